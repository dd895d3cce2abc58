#include "RingleaderLink.h"

#include <avr/eeprom.h>
#include <string.h>

// Message types (PROTOCOL.md, "Messages").
enum : uint8_t {
  MSG_HELLO = 0,
  MSG_READING = 1,
  MSG_ACK = 2,
  MSG_NACK = 3,
  MSG_TIME = 4,
  MSG_TIME_REPLY = 5,
  MSG_WHO = 6,
  MSG_CONFIG = 7,
  MSG_CONFIG_REPLY = 8,
  MSG_STATS = 9,
  MSG_STATS_REQUEST = 10,
};
enum : uint8_t { ACK_COMMITTED = 0, ACK_BUFFERED = 1, NACK_REJECTED = 2, NACK_RETRY = 3 };

// EEPROM layout (PROTOCOL.md, "Device identity"): magic "RL", layout 1, id, boot counter, interval.
static const uint8_t EE_MAGIC_0 = 'R', EE_MAGIC_1 = 'L', EE_LAYOUT = 1;
#define EE_MAGIC ((uint8_t*)0)
#define EE_ID ((uint8_t*)3)
#define EE_BOOT ((uint32_t*)20)
#define EE_INTERVAL ((uint32_t*)24)

// Retransmission: the first resend after 400 ms (a commit on a busy cluster can take a few
// hundred), doubling up to 6.4 s. A NACK `retry` means the bridge is alive but cannot take the
// reading yet, so it waits a full second.
static const uint16_t RTO_FIRST_MS = 400;
static const uint8_t RTO_MAX_SHIFT = 4;
static const uint16_t RETRY_AFTER_NACK_MS = 1000;
static const uint16_t HELLO_EVERY_MS = 2000;
static const uint32_t STATS_EVERY_MS = 30000;
static const uint32_t MAX_INTERVAL_MS = 86400000UL;
// Bytes handled per poll(), so one call stays short (64 bytes take ~5.6 ms to arrive anyway).
static const uint8_t RX_BYTES_PER_POLL = 64;

static bool validName(const char* s, uint8_t maxLen) {
  uint8_t n = 0;
  for (; *s; s++, n++) {
    char c = *s;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.';
    if (!ok || n >= maxLen) return false;
  }
  return n > 0;
}

void RingleaderLink::begin(uint32_t baud, const char* firmware, uint32_t defaultIntervalMs) {
  strncpy(firmware_, firmware, RL_MAX_FIRMWARE);
  for (uint8_t i = 0; i < RL_WINDOW; i++) window_[i].state = 0;
  cobs_.begin(rx_, sizeof rx_);
  loadEeprom(defaultIntervalMs);
  port_.begin(baud);
  // A delimiter first: whatever half frame the bridge holds from before a reset ends here.
  port_.write((uint8_t)0);
  sendHello();
}

void RingleaderLink::loadEeprom(uint32_t defaultIntervalMs) {
  uint8_t magic[3];
  eeprom_read_block(magic, EE_MAGIC, 3);
  if (magic[0] != EE_MAGIC_0 || magic[1] != EE_MAGIC_1 || magic[2] != EE_LAYOUT) {
    generateId();
    eeprom_update_block(id_, EE_ID, RL_MAX_NAME + 1);
    eeprom_update_dword(EE_BOOT, 0);
    eeprom_update_dword(EE_INTERVAL, 0xFFFFFFFFUL);
    const uint8_t header[3] = {EE_MAGIC_0, EE_MAGIC_1, EE_LAYOUT};
    eeprom_update_block(header, EE_MAGIC, 3);
  }
  eeprom_read_block(id_, EE_ID, RL_MAX_NAME + 1);
  id_[RL_MAX_NAME] = 0;
  if (!validName(id_, RL_MAX_NAME)) {
    generateId();
    eeprom_update_block(id_, EE_ID, RL_MAX_NAME + 1);
  }
  // The boot id must differ on every boot: the bridge de-duplicates by (device, boot, sequence)
  // and sequence numbers restart at 0. 100 000 EEPROM writes are ~270 years of daily reboots.
  boot_ = eeprom_read_dword(EE_BOOT) + 1;
  eeprom_update_dword(EE_BOOT, boot_);
  uint32_t stored = eeprom_read_dword(EE_INTERVAL);
  intervalMs_ = stored == 0xFFFFFFFFUL ? defaultIntervalMs : stored;
}

void RingleaderLink::generateId() {
  // Entropy from the noise of the ADC on the internal temperature sensor and a floating pin,
  // sampled against timer jitter. Good enough to tell a handful of boards apart; a deployment
  // that cares sets ids when flashing (see README.md).
  uint32_t crc = rl_crc32_begin();
  for (uint8_t i = 0; i < 32; i++) {
    uint16_t a = analogRead(i & 1 ? A0 : A5);
    uint32_t t = micros();
    crc = rl_crc32_update(crc, (const uint8_t*)&a, sizeof a);
    crc = rl_crc32_update(crc, (const uint8_t*)&t, sizeof t);
  }
  static const char hex[] = "0123456789abcdef";
  strcpy(id_, "uno-");
  for (uint8_t i = 0; i < 6; i++) id_[4 + i] = hex[(crc >> (4 * i)) & 0xF];
  id_[10] = 0;
}

uint64_t RingleaderLink::uptimeMs() {
  uint32_t now = millis();
  if (now < lastMillis_) millisWraps_++;
  lastMillis_ = now;
  return ((uint64_t)millisWraps_ << 32) | now;
}

uint64_t RingleaderLink::epochMs() { return linked_ ? epochAtBoot_ + uptimeMs() : 0; }

uint8_t RingleaderLink::freeSlots() const {
  uint8_t n = 0;
  for (uint8_t i = 0; i < RL_WINDOW; i++)
    if (!(window_[i].state & SLOT_USED)) n++;
  return n;
}

static bool notYet(uint16_t now, uint16_t dueAt) { return (int16_t)(now - dueAt) < 0; }

bool RingleaderLink::due(uint8_t readings) {
  if (intervalMs_ == 0 || freeSlots() < readings) return false;
  uint32_t now = millis();
  // One round per millisecond at most: a CONFIG handled in the millisecond of a round restarts
  // the schedule, and a second round then would give each sensor two readings with one uptime,
  // that is one key, and the bridge could not promise they stay in order (seen in the e2e test).
  if (nextSeq_ > 0 && now == lastStampMs_) return false;
  if (sampled_ && (uint32_t)(now - lastDue_) < intervalMs_) return false;
  // Keep a steady period, but do not race to catch up after a long pause.
  if (!sampled_ || (uint32_t)(now - lastDue_) >= 2 * intervalMs_)
    lastDue_ = now;
  else
    lastDue_ += intervalMs_;
  sampled_ = true;
  return true;
}

bool RingleaderLink::addSensor(const char* name) {
  return validName(name, RL_MAX_NAME) && noteSensor(name) >= 0;
}

int8_t RingleaderLink::noteSensor(const char* name) {
  for (uint8_t i = 0; i < RL_MAX_SENSORS; i++) {
    if (sensors_[i] == nullptr) {
      sensors_[i] = name;
      return (int8_t)i;
    }
    if (sensors_[i] == name || strcmp(sensors_[i], name) == 0) return (int8_t)i;
  }
  return -1;  // more distinct names than RL_MAX_SENSORS
}

bool RingleaderLink::enqueue(const char* sensor, uint8_t kind, double f, long i) {
  int8_t index = sensor != nullptr && validName(sensor, RL_MAX_NAME) ? noteSensor(sensor) : -1;
  if (index < 0) {
    stats_.dropped++;
    return false;
  }
  Slot* slot = nullptr;
  for (uint8_t k = 0; k < RL_WINDOW; k++) {
    if (!(window_[k].state & SLOT_USED)) {
      slot = &window_[k];
      break;
    }
  }
  if (slot == nullptr) {
    stats_.dropped++;
    return false;
  }
  uint64_t up = uptimeMs();
  lastStampMs_ = (uint32_t)up;
  slot->sensor = (uint8_t)index;
  slot->seq = nextSeq_++;
  slot->uptimeLo = (uint32_t)up;
  slot->uptimeHi = (uint8_t)(up >> 32);
  if (kind == KIND_INT) {
    slot->value.i = i;
    slot->state = SLOT_USED | SLOT_INT;
  } else {
    slot->value.f = (float)f;
    slot->state = SLOT_USED;
  }
  slot->dueAt = (uint16_t)up;
  // Sent right away when there is room in the serial buffer; otherwise poll() sends it.
  if (linked_) sendReading(*slot);
  return true;
}

void RingleaderLink::poll() {
  uint8_t budget = RX_BYTES_PER_POLL;
  while (budget-- && port_.available() > 0) {
    int16_t n = cobs_.push((uint8_t)port_.read());
    if (n > 0)
      handleFrame((uint8_t)n);
    else if (n < 0)
      stats_.rxBad++;
  }
  uint32_t now = (uint32_t)uptimeMs();
  if (!linked_) {
    if ((uint32_t)(now - lastHelloAt_) >= HELLO_EVERY_MS) sendHello();
    return;  // readings wait in the window until the bridge has said who it is
  }
  serviceWindow(now);
  if ((uint32_t)(now - lastStatsAt_) >= STATS_EVERY_MS) sendStats();
}

void RingleaderLink::serviceWindow(uint32_t now) {
  // Oldest first, so a burst of resends keeps the stream roughly in order.
  for (;;) {
    Slot* next = nullptr;
    for (uint8_t k = 0; k < RL_WINDOW; k++) {
      Slot& s = window_[k];
      if (!(s.state & SLOT_USED) || notYet((uint16_t)now, s.dueAt)) continue;
      if (next == nullptr || (int32_t)(s.seq - next->seq) < 0) next = &s;
    }
    if (next == nullptr || !sendReading(*next)) return;
  }
}

bool RingleaderLink::sendReading(Slot& slot) {
  startPayload(6, MSG_READING);
  w_.uint(boot_);
  w_.uint(slot.seq);
  w_.text(sensors_[slot.sensor]);
  if (slot.state & SLOT_INT)
    w_.sint(slot.value.i);
  else
    w_.float32(slot.value.f);
  w_.uint64(((uint64_t)slot.uptimeHi << 32) | slot.uptimeLo);
  if (!transmit(false)) return false;
  if (slot.state & SLOT_SENT)
    stats_.retransmits++;
  else
    stats_.sent++;
  uint8_t tries = slot.state >> TRIES_SHIFT;
  uint8_t shift = tries < RTO_MAX_SHIFT ? tries : RTO_MAX_SHIFT;
  if (tries < 15) tries++;
  slot.state = (uint8_t)((slot.state & 0x0F) | SLOT_SENT | (tries << TRIES_SHIFT));
  slot.dueAt = (uint16_t)(millis() + ((uint16_t)RTO_FIRST_MS << shift));
  return true;
}

void RingleaderLink::sendHello() {
  lastHelloAt_ = millis();
  // Fixed part first; then as many sensor names as still fit in one frame.
  uint8_t budget = RL_TX_PAYLOAD_MAX - (1 + 1 + 1 + (1 + RL_MAX_NAME) + 5 + (2 + RL_MAX_FIRMWARE) + 9 + 5 + 2 + 2);
  uint8_t count = 0;
  for (; count < RL_MAX_SENSORS && sensors_[count] != nullptr; count++) {
    uint8_t cost = 1 + strlen(sensors_[count]);
    if (cost > budget) break;
    budget -= cost;
  }
  startPayload(9, MSG_HELLO);
  w_.uint(RL_PROTOCOL_VERSION);
  w_.text(id_);
  w_.uint(boot_);
  w_.text(firmware_);
  w_.uint64(uptimeMs());
  w_.uint(intervalMs_);
  w_.uint(RL_WINDOW);
  w_.array(count);
  for (uint8_t i = 0; i < count; i++) w_.text(sensors_[i]);
  transmit(true);
}

void RingleaderLink::sendStats() {
  lastStatsAt_ = millis();
  uint8_t unacked = RL_WINDOW - freeSlots();
  startPayload(11, MSG_STATS);
  w_.uint(boot_);
  w_.uint(nextSeq_);
  w_.uint(unacked);
  w_.uint(stats_.retransmits);
  w_.uint(stats_.rejected);
  w_.uint(stats_.dropped);
  w_.uint(stats_.rxBad);
  w_.uint(stats_.rxIgnored);
  w_.uint(intervalMs_);
  w_.uint64(uptimeMs());
  transmit(true);
}

void RingleaderLink::sendReply(uint8_t type, uint32_t token, uint64_t value) {
  startPayload(4, type);
  w_.uint(boot_);
  w_.uint(token);
  w_.uint64(value);
  transmit(true);
}

void RingleaderLink::startPayload(uint8_t items, uint8_t type) {
  w_.begin(tx_, RL_TX_PAYLOAD_MAX);
  w_.array(items);
  w_.uint(type);
}

bool RingleaderLink::transmit(bool mustSend) {
  if (!w_.ok) return false;  // a programming error (a frame that cannot fit); never sent
  uint8_t n = w_.len;
  uint32_t crc = rl_crc32_end(rl_crc32_update(rl_crc32_begin(), tx_, n));
  for (uint8_t k = 0; k < 4; k++) tx_[n++] = (uint8_t)(crc >> (8 * k));
  // Readings are only sent when the whole frame fits in the serial buffer, so loop() never
  // blocks on the wire; replies and HELLO wait for room (they are rare).
  if (!mustSend && port_.availableForWrite() < (int)rl_cobs_size(n) + 1) return false;
  uint8_t i = 0;
  for (;;) {
    uint8_t j = i;
    while (j < n && tx_[j] != 0 && j - i < 254) j++;
    uint8_t block = j - i;
    port_.write((uint8_t)(block + 1));
    port_.write(tx_ + i, block);
    if (block == 254) {
      i = j;
      if (i == n) break;
      continue;
    }
    if (j == n) break;
    i = j + 1;  // the zero this block stands for
  }
  port_.write((uint8_t)0);
  return true;
}

void RingleaderLink::handleFrame(uint8_t len) {
  if (len < 5) {
    stats_.rxBad++;
    return;
  }
  uint8_t n = len - 4;
  uint32_t crc = rl_crc32_end(rl_crc32_update(rl_crc32_begin(), rx_, n));
  uint32_t got = (uint32_t)rx_[n] | ((uint32_t)rx_[n + 1] << 8) | ((uint32_t)rx_[n + 2] << 16) |
                 ((uint32_t)rx_[n + 3] << 24);
  if (crc != got) {
    stats_.rxBad++;
    return;
  }
  RlCborReader r;
  r.begin(rx_, n);
  int16_t items = r.array();
  uint32_t type = r.uint();
  if (!r.ok || items < 1) {
    stats_.rxBad++;
    return;
  }
  // Fields a newer bridge appends after the ones we know are ignored (PROTOCOL.md, "Versions").
  switch (type) {
    case MSG_ACK:
    case MSG_NACK:
      if (items < 4) break;
      handleAck(r, type == MSG_ACK);
      return;
    case MSG_TIME: {
      if (items < 3) break;
      uint32_t token = r.uint();
      uint64_t epoch = r.uint64();
      if (!r.ok) break;
      uint64_t up = uptimeMs();
      epochAtBoot_ = epoch - up;
      linked_ = true;
      sendReply(MSG_TIME_REPLY, token, up);
      return;
    }
    case MSG_WHO:
      sendHello();
      return;
    case MSG_CONFIG: {
      if (items < 3) break;
      uint32_t token = r.uint();
      uint32_t interval = r.uint();
      if (!r.ok) break;
      if (interval > MAX_INTERVAL_MS) interval = MAX_INTERVAL_MS;
      if (interval != intervalMs_) {
        intervalMs_ = interval;
        eeprom_update_dword(EE_INTERVAL, interval);
        sampled_ = false;
      }
      sendReply(MSG_CONFIG_REPLY, token, intervalMs_);
      return;
    }
    case MSG_STATS_REQUEST:
      sendStats();
      return;
    default:
      stats_.rxIgnored++;
      return;
  }
  stats_.rxBad++;
}

void RingleaderLink::handleAck(RlCborReader& r, bool positive) {
  uint32_t boot = r.uint();
  uint32_t seq = r.uint();
  uint32_t status = r.uint();
  if (!r.ok) {
    stats_.rxBad++;
    return;
  }
  if (boot != boot_) return;  // meant for a previous boot of this board
  for (uint8_t k = 0; k < RL_WINDOW; k++) {
    Slot& s = window_[k];
    if (!(s.state & SLOT_USED) || s.seq != seq) continue;
    if (positive) {
      if (status == ACK_BUFFERED)
        stats_.buffered++;
      else
        stats_.committed++;
      s.state = 0;
    } else if (status == NACK_RETRY) {
      s.dueAt = (uint16_t)(millis() + RETRY_AFTER_NACK_MS);
    } else {
      stats_.rejected++;
      s.state = 0;
    }
    return;
  }
  // No such slot: a duplicate ACK for a reading already freed. Nothing to do.
}
