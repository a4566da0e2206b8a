# Sourced by the bench scripts: this machine's description and its limits,
# measured in the same run as the figures they are compared with.
#   machine DIR OUT      cores, CPU, memory, kernel, the disk under DIR
#   disk_limit DIR OUT   fio: sequential 64 KiB direct writes, io_uring, iodepth 8
#   disk_read_limit DIR OUT  fio: sequential 1 MiB direct reads, io_uring, iodepth 8
#   loopback_limit OUT   iperf3: loopback TCP, one stream, 10 s
#   all_limits DIR OUT   the three above

machine() {
  echo "== machine"
  { nproc; grep -m1 "model name" /proc/cpuinfo; free -g | sed -n 2p; uname -r; df -h "$1" | tail -1; } | tee "$2/machine.txt"
}

disk_limit() {
  echo "== fio: sequential 64 KiB direct writes, io_uring, iodepth 8 (the disk limit)"
  fio --name=seqwrite --filename="$1/fio-seq.dat" --size=4G --rw=write --bs=64k \
      --ioengine=io_uring --direct=1 --iodepth=8 --runtime=20 --time_based \
      --output-format=json > "$2/fio-seq.json"
  rm -f "$1/fio-seq.dat"
}

loopback_limit() {
  echo "== iperf3: loopback TCP, one stream (the network limit)"
  iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
  local server=$!
  sleep 1
  iperf3 -c 127.0.0.1 -p 5299 -t 10 -J > "$1/iperf3.json"
  wait $server || true
}

all_limits() {
  machine "$1" "$2"
  disk_limit "$1" "$2"
  loopback_limit "$2"
}

disk_read_limit() {
  echo "== fio: sequential 1 MiB direct reads, io_uring, iodepth 8 (the disk read limit)"
  fio --name=seqread --filename="$1/fio-read.dat" --size=2G --rw=read --bs=1M \
      --ioengine=io_uring --direct=1 --iodepth=8 --runtime=15 --time_based \
      --output-format=json > "$2/fio-read.json"
  rm -f "$1/fio-read.dat"
}
