/**
 * CRC-32/ISO-HDLC, the CRC of zlib and Ethernet: reflected polynomial 0xEDB88320, initial value
 * and final XOR 0xFFFFFFFF; check value 0xCBF43926 for "123456789". The firmware computes the
 * same bit by bit (`rl_codec.cpp`); here a table is cheap.
 */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
