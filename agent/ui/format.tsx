/** Small formatting helpers and the node colour palette. */
export const PALETTE = [
  "#4f8cff",
  "#ff8a3d",
  "#2fbf71",
  "#c86bfa",
  "#f2c94c",
  "#26c6da",
  "#ff5c8a",
  "#9ccc65",
];

export function colourOf(ids: readonly string[], id: string | null): string {
  if (id === null) return "#3a4152";
  const i = [...ids].sort().indexOf(id);
  return i < 0 ? "#8a93a6" : PALETTE[i % PALETTE.length]!;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function duration(sec: number): string {
  if (sec < 3600) return `${Math.round(sec / 60)} min`;
  if (sec < 86400) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} d`;
}

export function num(v: number): string {
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}
