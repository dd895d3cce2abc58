/*
 * ringleader_sensors: the demo sketch of the Ringleader firmware bridge. Every sampling interval
 * (1 s unless the bridge configures another) it sends three readings:
 *
 *   a0         the raw value of analog pin A0 (0-1023)
 *   chip_temp  the ATmega328P's internal temperature sensor, in degrees Celsius (+-10 degC
 *              uncalibrated; see README.md for calibrating it or adding a DHT22 or BME280)
 *   count      a counter that goes up by one per sampling round, handy to spot gaps
 *
 * The link library does the rest: sequence numbers, acknowledgements, resending.
 */
#include <RingleaderLink.h>

// A plain avr-gcc build compiles this file as C++ without the Arduino IDE's preprocessing, so
// functions are declared before use.
float readChipTemperature();

RingleaderLink link(Serial);
static unsigned long rounds = 0;

void setup() {
  // Listed up front so that the first HELLO names them.
  link.addSensor("a0");
  link.addSensor("chip_temp");
  link.addSensor("count");
  link.begin(115200, "ringleader_sensors/1.0.0");
}

void loop() {
  link.poll();
  // due(3): a sampling round is due and all three readings fit in the window. While the bridge is
  // unreachable the window fills and sampling waits rather than losing readings.
  if (!link.due(3)) return;
  link.send("a0", analogRead(A0));
  link.send("chip_temp", readChipTemperature());
  link.send("count", ++rounds);
}

float readChipTemperature() {
  // Channel 8 against the internal 1.1 V reference (datasheet section 24.8). The first conversion
  // after switching the reference is discarded because the reference needs time to settle;
  // analogRead() switches it back to AVcc for A0.
  ADMUX = _BV(REFS1) | _BV(REFS0) | _BV(MUX3);
  uint16_t raw = 0;
  for (uint8_t i = 0; i < 2; i++) {
    ADCSRA |= _BV(ADSC);
    while (ADCSRA & _BV(ADSC)) {
    }
    raw = ADCW;
  }
  // About 1 mV per degree and 314 mV at 25 degC (datasheet table 24-2); one step is 1100/1024 mV.
  float millivolts = raw * (1100.0f / 1024.0f);
  return millivolts - 314.0f + 25.0f;
}
