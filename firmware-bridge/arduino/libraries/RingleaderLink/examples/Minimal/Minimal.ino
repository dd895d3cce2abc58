// The smallest sketch that sends a reading to a Ringleader bridge once per sampling interval.
#include <RingleaderLink.h>

RingleaderLink link(Serial);

void setup() { link.begin(); }

void loop() {
  link.poll();
  if (link.due()) link.send("temp", 21.5);
}
