#include "rl_codec.h"

#include <string.h>

uint32_t rl_crc32_update(uint32_t crc, const uint8_t* data, size_t len) {
  // Bitwise rather than a 1 KiB table: frames are short, and flash and RAM are scarcer than
  // the ~100 cycles per byte this costs (a 30-byte frame takes ~0.2 ms at 16 MHz).
  while (len--) {
    crc ^= *data++;
    for (uint8_t bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320UL & (0UL - (crc & 1UL)));
  }
  return crc;
}

void RlCborWriter::head(uint8_t major, uint32_t v) {
  uint8_t m = (uint8_t)(major << 5);
  if (v < 24) {
    put(m | (uint8_t)v);
  } else if (v <= 0xFF) {
    put(m | 24);
    put((uint8_t)v);
  } else if (v <= 0xFFFF) {
    put(m | 25);
    put((uint8_t)(v >> 8));
    put((uint8_t)v);
  } else {
    put(m | 26);
    put((uint8_t)(v >> 24));
    put((uint8_t)(v >> 16));
    put((uint8_t)(v >> 8));
    put((uint8_t)v);
  }
}

void RlCborWriter::uint64(uint64_t v) {
  if (v <= 0xFFFFFFFFULL) {
    head(0, (uint32_t)v);
    return;
  }
  put(27);  // major 0, 8-byte argument
  for (int8_t shift = 56; shift >= 0; shift -= 8) put((uint8_t)(v >> shift));
}

void RlCborWriter::sint(int32_t v) {
  if (v >= 0)
    head(0, (uint32_t)v);
  else
    head(1, (uint32_t)(-(v + 1)));
}

void RlCborWriter::float32(float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  put(0xFA);
  put((uint8_t)(bits >> 24));
  put((uint8_t)(bits >> 16));
  put((uint8_t)(bits >> 8));
  put((uint8_t)bits);
}

void RlCborWriter::text(const char* s) {
  size_t n = strlen(s);
  if (n > 255) {
    ok = false;
    return;
  }
  head(3, (uint32_t)n);
  while (n--) put((uint8_t)*s++);
}

uint64_t RlCborReader::arg(uint8_t info) {
  uint8_t bytes;
  if (info < 24) return info;
  if (info == 24)
    bytes = 1;
  else if (info == 25)
    bytes = 2;
  else if (info == 26)
    bytes = 4;
  else if (info == 27)
    bytes = 8;
  else {
    ok = false;  // indefinite lengths and reserved values are not part of the subset
    return 0;
  }
  if (end - p < bytes) {
    ok = false;
    return 0;
  }
  uint64_t v = 0;
  while (bytes--) v = (v << 8) | *p++;
  return v;
}

int16_t RlCborReader::array() {
  if (!ok || p >= end || (*p >> 5) != 4) {
    ok = false;
    return -1;
  }
  uint64_t n = arg(*p++ & 0x1F);
  if (!ok || n > 255) {
    ok = false;
    return -1;
  }
  return (int16_t)n;
}

uint64_t RlCborReader::uint64() {
  if (!ok || p >= end || (*p >> 5) != 0) {
    ok = false;
    return 0;
  }
  return arg(*p++ & 0x1F);
}

void RlCborReader::skip() {
  if (!ok || p >= end) {
    ok = false;
    return;
  }
  uint8_t major = *p >> 5;
  uint8_t info = *p++ & 0x1F;
  if (major == 7) {  // simple values and floats: the argument is the value itself
    if (info >= 24) arg(info);
    return;
  }
  uint64_t n = arg(info);
  if (!ok) return;
  if (major == 2 || major == 3) {
    if ((uint64_t)(end - p) < n) {
      ok = false;
      return;
    }
    p += n;
  } else if (major != 0 && major != 1) {
    ok = false;  // arrays, maps and tags: not in the subset the bridge sends
  }
}

int16_t RlCobsDecoder::push(uint8_t byte) {
  if (byte == 0) {
    int16_t result;
    if (code == 0 && !broken)
      result = 0;  // an empty frame: two delimiters in a row, harmless
    else if (broken || remaining != 0 || len == 0)
      result = -1;
    else
      result = len;
    reset();
    return result;
  }
  if (broken) return 0;
  if (remaining == 0) {
    // A code byte: the block before it ended with an implicit zero, unless it was a full
    // 254-byte block (code 0xFF), which carries none.
    if (code != 0 && code != 0xFF) {
      if (len >= cap) {
        broken = true;
        return 0;
      }
      buf[len++] = 0;
    }
    code = byte;
    remaining = (uint8_t)(byte - 1);
    return 0;
  }
  if (len >= cap) {
    broken = true;
    return 0;
  }
  buf[len++] = byte;
  remaining--;
  return 0;
}
