// Command halo-bench measures halo's XDP data plane against baselines and
// the kernel's own forwarding, side by side on one lab of namespaces, runs
// the microbenchmarks, and writes docs/benchmarks.md (`make bench`).
// `--quick` runs every scenario briefly: the smoke test of `make test`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/halo-lb/halo/pkg/bench"
)

func main() {
	quick := flag.Bool("quick", false, "a few seconds: one short run per scenario, no slow microbenchmarks, no report unless -out is given")
	// 7 rounds of 2,000,000 frames (about 6 minutes in all): with 500,000 the
	// MAC-swap baseline alone moved ±15 % between rounds here and the ratios
	// of two whole runs by 0.1.
	runs := flag.Int("runs", 7, "rounds: each measures every scenario once, in turn (the report gives medians)")
	packets := flag.Uint("packets", 2_000_000, "frames per run")
	batch := flag.Uint("batch", 64, "live-frames batch size")
	only := flag.String("only", "", "comma-separated substrings: run only the matching scenarios")
	out := flag.String("out", "", "report file (default docs/benchmarks.md; with --quick: none)")
	micro := flag.Bool("micro", true, "run the microbenchmarks")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "halo-bench needs root (network namespaces, XDP, BPF_PROG_RUN)")
		os.Exit(2)
	}
	opts := bench.Options{Runs: *runs, Packets: uint32(*packets), Batch: uint32(*batch)}
	if *quick {
		opts.Runs, opts.Packets = 1, 50_000
	}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	report := *out
	if report == "" && !*quick {
		report = "docs/benchmarks.md"
	}
	opts.Progress = progress()

	r := &bench.Runner{Log: os.Stderr}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\ninterrupted: removing the lab")
		r.Close()
		os.Exit(130)
	}()
	start := time.Now()
	var res []bench.Result
	var mic *bench.Micro
	err := bench.Catch(func() {
		env := bench.NewEnv(r)
		res = bench.Run(env, bench.Scenarios(), opts)
		r.Close()
		if *micro {
			mic = bench.RunMicro(bench.MicroOptions{Quick: *quick, Log: os.Stderr})
		}
	})
	r.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "halo-bench:", err)
		os.Exit(1)
	}
	fmt.Print(bench.Table(res))
	broken := 0
	for _, x := range res {
		if x.Err != nil {
			broken++
		}
	}
	if report != "" {
		cmd := "make bench"
		if len(os.Args) > 1 {
			cmd = "go run ./cmd/halo-bench " + strings.Join(os.Args[1:], " ")
		}
		if err := bench.WriteReport(report, res, mic, opts, cmd, time.Since(start)); err != nil {
			fmt.Fprintln(os.Stderr, "halo-bench: report:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "wrote", report)
	}
	if broken > 0 {
		fmt.Fprintf(os.Stderr, "halo-bench: %d scenario(s) broke\n", broken)
		os.Exit(1)
	}
}

// progress draws a bar on a terminal and prints a line per step otherwise.
func progress() func(done, total int, label string) {
	fi, _ := os.Stderr.Stat()
	tty := fi != nil && fi.Mode()&os.ModeCharDevice != 0
	start := time.Now()
	return func(done, total int, label string) {
		const w = 30
		n := 0
		if total > 0 {
			n = done * w / total
		}
		bar := strings.Repeat("#", n) + strings.Repeat(".", w-n)
		line := fmt.Sprintf("[%s] %3d/%d %5.0fs %s", bar, done, total, time.Since(start).Seconds(), label)
		if tty {
			fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
			return
		}
		fmt.Fprintln(os.Stderr, line)
	}
}
