package main

import (
	"flag"

	"github.com/halo-lb/halo/pkg/daemon/manpage"
)

// manPage is halod(8); OPTIONS come from the flag set itself.
func manPage(fs *flag.FlagSet) manpage.Page {
	return manpage.Page{Name: "halod", Section: 8, Version: version, Summary: "VRRP, health checks and an XDP/IPVS load balancer, configured like keepalived",
		Synopsis: "[-f FILE] [OPTIONS]", Flags: fs,
		Before: []manpage.Section{{Title: "Description", Body: `halod reads a keepalived.conf and runs its vrrp_instances, the health checkers of its virtual_servers and the data plane that forwards their traffic (XDP, IPVS or none). It runs in the foreground and logs to standard error; under systemd it reports readiness, reloads and the watchdog with sd_notify.

haloctl(8) talks to the control socket; Prometheus scrapes /metrics.`}},
		After: []manpage.Section{
			{Title: "Signals", Body: `SIGHUP reloads the configuration: a config that does not load changes nothing; otherwise only the difference is applied (unchanged checkers keep their verdicts, unchanged VRRP instances keep their state). A SIGHUP during start-up is handled once start-up is complete.

SIGUSR1 writes the state as JSON to the --dump-file; SIGUSR2 writes statistics to the --stats-file.

SIGTERM and SIGINT stop halod as keepalived stops: masters send a priority-0 advert, VIPs are removed, notify_stop runs.`},
			{Title: "Exit status", Body: `With -t: 0 valid, 4 unreadable, 5 errors (or warnings with --strict-config), 6 script security. Otherwise 0 after a clean stop, 1 on a start-up or runtime failure, 2 on bad flags.`},
			{Title: "Files", Body: `/etc/keepalived/keepalived.conf, /run/halo/halod.sock, /sys/fs/bpf/halo, /tmp/halo.data, /tmp/halo.stats`},
			{Title: "See also", Body: `haloctl(8), keepalived.conf(5), systemd.service(5)`},
		}}
}
