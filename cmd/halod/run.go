package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/halo-lb/halo/pkg/bgp"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/daemon"
	"github.com/halo-lb/halo/pkg/daemon/manpage"
	"github.com/halo-lb/halo/pkg/daemon/sdnotify"
)

// options are halod's command-line flags.
type options struct {
	configFile      string
	test            bool
	dump            bool
	configID        string
	strict          bool
	checkInterfaces bool
	dataplane       string
	control         string
	metricsAddr     string
	bpffs           string
	debug           bool
	keepDataplane   bool
	dumpFile        string
	statsFile       string
	pidFile         string
	logFormat       string
	logSyslog       bool
	showVersion     bool
	man             bool
	notifyTimeout   time.Duration
	keepCaps        bool
}

const defaultMetricsAddr = "127.0.0.1:9650"

func flagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("halod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "f", "/etc/keepalived/keepalived.conf", "config `file` (keepalived.conf syntax)")
	fs.BoolVar(&o.test, "t", false, "check the config and exit: 0 valid, 4 unreadable, 5 errors or warnings, 6 script security")
	fs.BoolVar(&o.dump, "d", false, "print the parsed config, defaults filled in, as JSON and exit")
	fs.StringVar(&o.configID, "config-id", "", "config `id` for @id / @^id lines (default: the short host name)")
	fs.StringVar(&o.configID, "i", "", "short for --config-id")
	fs.BoolVar(&o.strict, "strict-config", false, "treat warnings (unknown keywords, values replaced by defaults) as errors")
	fs.BoolVar(&o.checkInterfaces, "check-interfaces", true, "report interfaces the config names that do not exist on this host")
	fs.StringVar(&o.dataplane, "dataplane", "", "override the config's data plane: "+strings.Join(daemon.Backends(), ", "))
	fs.StringVar(&o.control, "control", "/run/halo/halod.sock", "control socket `path` (haloctl talks to it)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", defaultMetricsAddr, "`address` of the Prometheus /metrics endpoint (empty: disabled)")
	fs.StringVar(&o.bpffs, "bpffs", "/sys/fs/bpf/halo", "bpffs `directory` for pinned maps and links")
	fs.BoolVar(&o.debug, "D", false, "detailed (debug) log")
	fs.BoolVar(&o.keepDataplane, "keep-dataplane", false, "on exit, leave the XDP program and its maps forwarding (for upgrades)")
	fs.StringVar(&o.dumpFile, "dump-file", "/tmp/halo.data", "`file` SIGUSR1 writes the state dump (JSON) to")
	fs.StringVar(&o.statsFile, "stats-file", "/tmp/halo.stats", "`file` SIGUSR2 writes statistics to")
	fs.StringVar(&o.pidFile, "pid-file", "", "write the process id to `file` (removed on exit)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.BoolVar(&o.logSyslog, "log-syslog", false, "also log to syslog (facility daemon)")
	fs.DurationVar(&o.notifyTimeout, "notify-timeout", daemon.DefaultNotifyTimeout,
		"`duration` a notify script (notify*, quorum_up/down, notify_up/down) may run before it is killed")
	fs.BoolVar(&o.keepCaps, "keep-caps", false, "keep every capability halod was started with (by default it keeps only what the config needs once it is up)")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&o.man, "man", false, "print this manual page (troff) and exit")
	return fs
}

var errVersion = fmt.Errorf("version")
var errMan = fmt.Errorf("man")

func parseFlags(args []string, stderr io.Writer) (*options, *flag.FlagSet, error) {
	o := &options{}
	fs := flagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.showVersion {
		return o, fs, errVersion
	}
	if o.man {
		return o, fs, errMan
	}
	if o.dataplane != "" && !contains(daemon.Backends(), o.dataplane) {
		return nil, fs, fmt.Errorf("--dataplane %q: want one of %s", o.dataplane, strings.Join(daemon.Backends(), ", "))
	}
	if o.notifyTimeout <= 0 {
		return nil, fs, fmt.Errorf("--notify-timeout %v: want a positive duration", o.notifyTimeout)
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return nil, fs, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	return o, fs, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func loadOptions(o *options) config.Options {
	opts := config.Options{ConfigID: o.configID, Scripts: config.NewScriptChecker(), Backend: o.dataplane}
	if o.checkInterfaces {
		opts.InterfaceExists = func(name string) bool {
			_, err := net.InterfaceByName(name)
			return err == nil
		}
	}
	return opts
}

func run(args []string, stdout, stderr io.Writer) int {
	// Subscribed first thing: a HUP while the config loads or the daemon
	// starts waits here instead of killing halod.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	o, fs, err := parseFlags(args, stderr)
	switch {
	case err == errVersion:
		fmt.Fprintln(stdout, "halod", version)
		return 0
	case err == errMan:
		manpage.Render(stdout, manPage(fs))
		return 0
	case err == flag.ErrHelp:
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "halod:", err)
		return 2
	}
	load := func() (*config.Config, *config.Diags) { return config.Load(o.configFile, loadOptions(o)) }
	cfg, diags := load()
	for _, d := range diags.List {
		fmt.Fprintln(stderr, d)
	}
	if o.test {
		code := diags.ExitCode(o.strict)
		if code == 0 {
			fmt.Fprintf(stderr, "%s: configuration OK\n", o.configFile)
		}
		return code
	}
	if cfg == nil {
		return 4
	}
	if o.dataplane != "" {
		cfg.Dataplane.Backend = o.dataplane
	}
	if o.dump {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintln(stderr, "halod:", err)
			return 1
		}
		if diags.Err(o.strict) != nil {
			return diags.ExitCode(o.strict)
		}
		return 0
	}
	if err := diags.Err(o.strict); err != nil {
		fmt.Fprintln(stderr, "halod: not starting: the configuration has errors")
		return diags.ExitCode(o.strict)
	}
	log, closer, err := daemon.NewLogger(stderr, daemon.LogOptions{Format: o.logFormat, Syslog: o.logSyslog, Debug: o.debug})
	if err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	defer closer.Close()
	metricsAddr := o.metricsAddr
	if metricsAddr == defaultMetricsAddr && !flagGiven(fs, "metrics-addr") && portTaken(metricsAddr) {
		// The default must not stop a second halod on one host (or a test
		// lab); an address asked for explicitly must.
		log.Warn("metrics: default address in use; /metrics disabled", "addr", metricsAddr)
		metricsAddr = ""
	}
	// Pins left by a previous halod mean its data plane kept forwarding:
	// the BGP speaker restarts gracefully (routers keep its routes).
	pins, _ := os.ReadDir(o.bpffs)
	d := daemon.New(cfg, daemon.Options{ConfigFile: o.configFile, Load: load, Strict: o.strict, Dataplane: o.dataplane,
		BPFFS: o.bpffs, KeepDataplane: o.keepDataplane, Control: o.control, MetricsAddr: metricsAddr,
		DumpFile: o.dumpFile, StatsFile: o.statsFile, PIDFile: o.pidFile, Version: version, Log: log,
		Notifier: sdnotify.FromEnv(), Signals: sigs, NotifyTimeout: o.notifyTimeout, DropCaps: !o.keepCaps,
		NewAnnouncer: func(c *config.Config, l *slog.Logger) (daemon.Announcer, error) {
			a, err := bgp.NewAnnouncer(context.Background(), c, l, len(pins) > 0)
			if a == nil {
				return nil, err // no bgp block, or it failed: never a typed nil
			}
			return a, nil
		}})
	if err := d.Run(context.Background()); err != nil {
		log.Error("halod: " + err.Error())
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	return 0
}

func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func portTaken(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	l.Close()
	return false
}
