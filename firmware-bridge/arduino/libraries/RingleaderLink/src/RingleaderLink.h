/*
 * RingleaderLink: sends sensor readings from an Arduino to a Ringleader bridge over USB serial,
 * following firmware-bridge/PROTOCOL.md (protocol version 1).
 *
 *   #include <RingleaderLink.h>
 *   RingleaderLink link(Serial);
 *   void setup() { link.begin(); }
 *   void loop() {
 *     link.poll();                        // every loop: reads ACKs, resends what was not acked
 *     if (link.due(1)) link.send("temp", 21.5);
 *   }
 *
 * Every reading gets a sequence number and waits in a small window until the bridge acknowledges
 * it; unacknowledged readings are sent again with backoff, so a reading survives corrupted bytes,
 * a restarting bridge or a cluster that is down. The library owns the serial port: do not print
 * to it yourself, that would corrupt frames (they are resynchronised, but lost).
 */
#ifndef RINGLEADER_LINK_H
#define RINGLEADER_LINK_H

#include <Arduino.h>

#include "rl_codec.h"

#define RL_PROTOCOL_VERSION 1

/*
 * Readings waiting for an ACK; each slot costs 17 bytes of RAM. The window must cover what the
 * line carries while an ACK is on its way: at 115200 baud about 470 readings/s, and a cluster
 * commit takes tens of milliseconds, so 32 keeps the line busy. Lower it to save RAM when a
 * sketch samples slowly (-DRL_WINDOW=8 saves 408 bytes).
 */
#ifndef RL_WINDOW
#define RL_WINDOW 32
#endif
/* Distinct sensor names a sketch may use (names themselves stay where the caller keeps them). */
#ifndef RL_MAX_SENSORS
#define RL_MAX_SENSORS 8
#endif
#define RL_MAX_NAME 16
#define RL_MAX_FIRMWARE 24
/* Largest payload this device sends; the protocol allows 124 (128 with the CRC). */
#define RL_TX_PAYLOAD_MAX 124
/* Largest frame (payload and CRC) this device accepts; the bridge never sends more than 48. */
#define RL_RX_FRAME_MAX 48

class RingleaderLink {
 public:
  struct Stats {
    uint32_t sent;        /* readings sent the first time */
    uint32_t retransmits; /* readings sent again */
    uint32_t committed;   /* ACK committed */
    uint32_t buffered;    /* ACK buffered (the bridge holds them until the cluster is back) */
    uint32_t rejected;    /* NACK rejected: the bridge refused the reading for good */
    uint32_t dropped;     /* send() refused because the window was full */
    uint32_t rxBad;       /* frames with a bad CRC, malformed or too long */
    uint32_t rxIgnored;   /* well-formed frames of unknown types */
  };

  explicit RingleaderLink(HardwareSerial& port) : port_(port) {}

  /*
   * Opens the port, reads the device id, boot counter and sampling interval from EEPROM (a blank
   * EEPROM gets a generated id such as "uno-3fa92c"), and says HELLO. `defaultIntervalMs` is the
   * sampling interval until the bridge configures another one.
   */
  void begin(uint32_t baud = 115200, const char* firmware = "ringleader-link/1",
             uint32_t defaultIntervalMs = 1000);

  /* Call on every pass of loop(): handles what the bridge sent and resends overdue readings. */
  void poll();

  /*
   * Queues a reading of `sensor` (a name of up to 16 characters from [A-Za-z0-9._-], kept by the
   * caller: a string literal is ideal). Returns false, and counts it as dropped, when the window
   * is full. The reading is stamped with the uptime now; the bridge maps it to wall-clock time.
   */
  bool send(const char* sensor, double value) { return enqueue(sensor, KIND_FLOAT, value, 0); }
  bool send(const char* sensor, long value) { return enqueue(sensor, KIND_INT, 0, value); }
  bool send(const char* sensor, int value) { return enqueue(sensor, KIND_INT, 0, value); }
  bool send(const char* sensor, unsigned int value) { return enqueue(sensor, KIND_INT, 0, (long)value); }
  bool send(const char* sensor, unsigned long value) {
    // Values above 2^31 travel as floats (rounded to 24 bits) rather than wrap to negatives.
    return value > 0x7FFFFFFFUL ? enqueue(sensor, KIND_FLOAT, (double)value, 0)
                                : enqueue(sensor, KIND_INT, 0, (long)value);
  }

  /*
   * True once per sampling interval, when at least `readings` slots are free: sample then. While
   * the bridge is away the window fills and sampling pauses instead of losing readings. Always
   * false while the bridge has paused sampling (interval 0).
   */
  bool due(uint8_t readings = 1);

  /* Names the sensors up front so the first HELLO lists them; send() adds names it meets. */
  bool addSensor(const char* name);

  uint8_t freeSlots() const;
  /* The bridge answered HELLO with TIME since this boot. */
  bool linked() const { return linked_; }
  uint32_t intervalMs() const { return intervalMs_; }
  /* Milliseconds since 1970 according to the bridge, or 0 before the first TIME. */
  uint64_t epochMs();
  /* Milliseconds since boot, 64 bits wide: millis() wraps after 49.7 days, this does not. */
  uint64_t uptimeMs();
  const char* deviceId() const { return id_; }
  uint32_t bootId() const { return boot_; }
  const Stats& stats() const { return stats_; }

 private:
  enum : uint8_t { KIND_FLOAT = 0, KIND_INT = 1 };
  /* Slot::state: flags in the low bits, the number of sends so far in the high nibble. */
  enum : uint8_t { SLOT_USED = 1, SLOT_SENT = 2, SLOT_INT = 4, TRIES_SHIFT = 4 };

  /* Packed to 17 bytes: the window is most of the library's RAM. */
  struct Slot {
    uint32_t seq;
    uint32_t uptimeLo;
    union {
      float f;
      int32_t i;
    } value;
    uint16_t dueAt; /* low 16 bits of millis() at which to send (again); delays stay below 32 s */
    uint8_t uptimeHi;
    uint8_t sensor; /* index into sensors_ */
    uint8_t state;
  };

  bool enqueue(const char* sensor, uint8_t kind, double f, long i);
  int8_t noteSensor(const char* name);
  void loadEeprom(uint32_t defaultIntervalMs);
  void generateId();
  void handleFrame(uint8_t len);
  void handleAck(RlCborReader& r, bool positive);
  bool sendReading(Slot& slot);
  void sendHello();
  void sendStats();
  void sendReply(uint8_t type, uint32_t token, uint64_t value);
  void startPayload(uint8_t items, uint8_t type);
  bool transmit(bool mustSend);
  void serviceWindow(uint32_t now);

  HardwareSerial& port_;
  char id_[RL_MAX_NAME + 1] = {0};
  char firmware_[RL_MAX_FIRMWARE + 1] = {0};
  uint32_t boot_ = 0;
  uint32_t nextSeq_ = 0;
  uint32_t intervalMs_ = 1000;
  uint32_t lastDue_ = 0;
  bool sampled_ = false;
  /** The uptime (low 32 bits) of the newest reading, if any (`nextSeq_ > 0`); `due` starts no round in that millisecond. */
  uint32_t lastStampMs_ = 0;
  bool linked_ = false;
  uint32_t lastHelloAt_ = 0;
  uint32_t lastStatsAt_ = 0;
  uint32_t lastMillis_ = 0;
  uint16_t millisWraps_ = 0;
  uint64_t epochAtBoot_ = 0;
  const char* sensors_[RL_MAX_SENSORS] = {0};
  Slot window_[RL_WINDOW];
  uint8_t tx_[RL_TX_PAYLOAD_MAX + 4];
  uint8_t rx_[RL_RX_FRAME_MAX];
  RlCborWriter w_;
  RlCobsDecoder cobs_;
  Stats stats_ = {0, 0, 0, 0, 0, 0, 0, 0};
};

#endif
