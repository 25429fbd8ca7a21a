package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/halo-lb/halo/pkg/config"
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
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("halod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "f", "/etc/keepalived/keepalived.conf", "config file (keepalived.conf syntax)")
	fs.BoolVar(&o.test, "t", false, "check the config and exit: 0 valid, 4 unreadable, 5 errors or warnings, 6 script security")
	fs.BoolVar(&o.dump, "d", false, "print the parsed config, defaults filled in, as JSON and exit")
	fs.StringVar(&o.configID, "config-id", "", "config id for @id / @^id lines (default: the short host name)")
	fs.StringVar(&o.configID, "i", "", "short for --config-id")
	fs.BoolVar(&o.strict, "strict-config", false, "treat warnings (unknown keywords, values replaced by defaults) as errors")
	fs.BoolVar(&o.checkInterfaces, "check-interfaces", true, "report interfaces the config names that do not exist on this host")
	fs.StringVar(&o.dataplane, "dataplane", "", "override the config's data plane: xdp, ipvs or none")
	fs.StringVar(&o.control, "control", "/run/halo/halod.sock", "control socket path")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "address for the Prometheus /metrics endpoint, e.g. 127.0.0.1:9650 (empty: disabled)")
	fs.StringVar(&o.bpffs, "bpffs", "/sys/fs/bpf/halo", "bpffs directory for pinned maps and links")
	fs.BoolVar(&o.debug, "D", false, "detailed (debug) log")
	fs.BoolVar(&o.keepDataplane, "keep-dataplane", false, "on exit, leave the XDP program and its maps forwarding (for upgrades)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *showVersion {
		return nil, errVersion
	}
	switch o.dataplane {
	case "", "xdp", "ipvs", "none":
	default:
		return nil, fmt.Errorf("--dataplane %q: want xdp, ipvs or none", o.dataplane)
	}
	return o, nil
}

var errVersion = fmt.Errorf("version")

func loadOptions(o *options) config.Options {
	opts := config.Options{ConfigID: o.configID, Scripts: config.NewScriptChecker()}
	if o.checkInterfaces {
		opts.InterfaceExists = func(name string) bool {
			_, err := net.InterfaceByName(name)
			return err == nil
		}
	}
	return opts
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err == errVersion {
		fmt.Fprintln(stdout, "halod", version)
		return 0
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 2
	}
	cfg, diags := config.Load(o.configFile, loadOptions(o))
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
	return daemon(cfg, o, stderr)
}
