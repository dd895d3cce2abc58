# Sourced by the benchmarks: bytes written to the block device that holds a directory.
#
# Why not each process's write_bytes (/proc/PID/io)? The kernel charges it when a page-cache
# folio turns dirty, at the folio's size; with large folios (ext4 has them since Linux 6.16) a
# 4 KiB write into a file can count as 64 KiB or more. For LMDB, which writes scattered pages,
# write_bytes read 250 KB per put on this machine while the device itself took 41 KB; for etcd,
# which appends to a file, the two agreed (2.8 vs 3.5 KB). The device's own counter
# (/proc/diskstats, in 512-byte sectors) is what an SD card wears by. It includes the
# filesystem's journal and any other writer on that device, so run nothing else meanwhile.

# The /proc/diskstats name of the block device holding DIR, or nothing when it has none (tmpfs,
# overlay on a device we cannot name).
disk_device_of() { # DIR
  local src
  src=$(findmnt -n -o SOURCE --target "$1" 2>/dev/null | head -1)
  src=${src#/dev/}
  if [ -n "$src" ] && awk -v d="$src" '$3 == d { found = 1 } END { exit !found }' /proc/diskstats; then
    echo "$src"
  fi
}

# Flushes DIR's filesystem (journal included), then prints the device's bytes written so far, or
# "-" when the device is unknown.
device_written_bytes() { # DIR
  local dev
  dev=$(disk_device_of "$1")
  [ -n "$dev" ] || { echo -; return; }
  sync -f "$1"
  awk -v d="$dev" '$3 == d { printf "%.0f\n", $10 * 512 }' /proc/diskstats
}
