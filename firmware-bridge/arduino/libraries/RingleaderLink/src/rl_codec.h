/*
 * The byte-level half of the Ringleader link protocol (see firmware-bridge/PROTOCOL.md):
 * CRC-32, COBS framing and the small subset of CBOR the messages use. Plain C-style code with
 * no Arduino dependency, so the same file could be unit-tested on a PC.
 */
#ifndef RINGLEADER_RL_CODEC_H
#define RINGLEADER_RL_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32/ISO-HDLC (the zlib/Ethernet CRC): reflected poly 0xEDB88320, init and xorout 0xFFFFFFFF. */
uint32_t rl_crc32_update(uint32_t crc, const uint8_t* data, size_t len);
static inline uint32_t rl_crc32_begin(void) { return 0xFFFFFFFFUL; }
static inline uint32_t rl_crc32_end(uint32_t crc) { return crc ^ 0xFFFFFFFFUL; }

/* Writes CBOR items into a fixed buffer; any overflow sets `ok` to false and writes nothing more. */
struct RlCborWriter {
  uint8_t* buf;
  uint8_t cap;
  uint8_t len;
  bool ok;

  void begin(uint8_t* b, uint8_t c) {
    buf = b;
    cap = c;
    len = 0;
    ok = true;
  }
  void array(uint8_t n) { head(4, n); }
  void uint(uint32_t v) { head(0, v); }
  void uint64(uint64_t v);
  void sint(int32_t v);
  void float32(float v);
  void text(const char* s);

 private:
  void head(uint8_t major, uint32_t v);
  void put(uint8_t b) {
    if (len < cap)
      buf[len++] = b;
    else
      ok = false;
  }
};

/* Reads the CBOR subset the bridge sends: one array of unsigned integers and text strings. */
struct RlCborReader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok;

  void begin(const uint8_t* b, uint8_t n) {
    p = b;
    end = b + n;
    ok = true;
  }
  /* The length of an array header, or -1 (and ok = false) when the next item is not an array. */
  int16_t array();
  uint64_t uint64();
  uint32_t uint() {
    uint64_t v = uint64();
    if (v > 0xFFFFFFFFULL) ok = false;
    return (uint32_t)v;
  }
  /* Skips one item of any kind except nested arrays and maps (the bridge never sends those). */
  void skip();

 private:
  uint64_t arg(uint8_t info);
};

/*
 * A streaming COBS decoder: feed it every received byte; `push` returns the decoded length when a
 * delimiter closes a well-formed frame that fits, 0 while a frame is still open, and -1 when a
 * frame was dropped (too long or malformed). The decoded bytes are in `buf`.
 */
struct RlCobsDecoder {
  uint8_t* buf;
  uint8_t cap;
  uint8_t len;
  uint8_t remaining; /* bytes still to come in the current block */
  uint8_t code;      /* the current block's code byte, 0 before the first */
  bool broken;       /* this frame overflowed: drop everything up to the next delimiter */

  void begin(uint8_t* b, uint8_t c) {
    buf = b;
    cap = c;
    reset();
  }
  void reset() {
    len = 0;
    remaining = 0;
    code = 0;
    broken = false;
  }
  int16_t push(uint8_t byte);
};

/* The COBS-encoded size of `n` bytes, without the delimiter. */
static inline uint16_t rl_cobs_size(uint16_t n) { return n + 1 + n / 254; }

#endif
