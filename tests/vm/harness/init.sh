#!/bin/busybox sh
# /init of the halo test VM: mount, load modules, run every test binary
# listed in /etc/halo-vm/tests and print one sentinel line per binary, which
# the host parses from the serial console. Written by tests/vm/harness.
/bin/busybox --install -s /bin
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TMPDIR=/tmp
# busybox's shell would run its own ip applet (no netns, no XDP) ahead of
# PATH; the tests exec /sbin/ip (iproute2) through PATH.
ip() { /sbin/ip "$@"; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /run/netns /root
for m in $(cat /etc/halo-vm/modules); do
	modprobe "$m" || echo "HALO-VM-WARN modprobe $m failed"
done
ip link set lo up
echo "HALO-VM-BOOTED kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
args=$(cat /etc/halo-vm/args)
cd /t
for t in $(cat /etc/halo-vm/tests); do
	echo "HALO-VM-START $t"
	HALO_VM=1 HALOD=/sbin/halod HALOCTL=/sbin/haloctl ./$t -test.v -test.count=1 -test.timeout=480s $args
	echo "HALO-VM-RESULT $t $?"
done
echo "HALO-VM-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
