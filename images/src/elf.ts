/**
 * Which machine an ELF file is for. The bundle check reads every native module's header, so a
 * build machine's x86-64 binary can never slip into an arm64 image.
 */

export interface ElfHeader {
  readonly bits: 32 | 64;
  readonly machine: number;
}

export const EM_ARM = 40;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

/** The header fields we need, or null when `bytes` is not an ELF file. */
export function readElfHeader(bytes: Uint8Array): ElfHeader | null {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    return null;
  }
  const bits = bytes[4] === 2 ? 64 : bytes[4] === 1 ? 32 : null;
  if (bits === null) return null;
  const littleEndian = bytes[5] === 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { bits, machine: view.getUint16(18, littleEndian) };
}

export function describeMachine(h: ElfHeader | null): string {
  if (h === null) return "not an ELF file";
  const names: Record<number, string> = { [EM_ARM]: "arm", [EM_X86_64]: "x86-64", [EM_AARCH64]: "aarch64" };
  return `${h.bits}-bit ${names[h.machine] ?? `machine ${h.machine}`}`;
}
