package bench

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/halo-lb/halo/pkg/dataplane/xdp"
)

// goal is one line of the goals with what this run measured.
func goal(b *strings.Builder, what, measured, target string, met, known bool, why string) {
	verdict := "not measured"
	if known {
		verdict = "**met**"
		if !met {
			verdict = "**not met**"
		}
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s |", what, measured, target, verdict)
	if why != "" && known && !met {
		fmt.Fprintf(b, " %s", why)
	}
	b.WriteString("\n")
}

func skipOr(m map[string]Result, name string) string {
	r, ok := m[name]
	switch {
	case !ok:
		return "not run"
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Err != nil:
		return "broken: " + r.Err.Error()
	}
	return ""
}

func pathNs(mic *Micro, name string) float64 {
	return Median(pathRounds(mic, name))
}

// pathRounds is the named path's rounds (nil when it was not measured).
func pathRounds(mic *Micro, name string) []float64 {
	if mic == nil {
		return nil
	}
	for _, p := range mic.Paths {
		if p.Name == name {
			return p.NsPkt
		}
	}
	return nil
}

// costs says what halo's established-flow paths cost through
// BPF_PROG_TEST_RUN in this run, for the headline's whys.
func costs(mic *Micro) string {
	steady, tracked, swap := pathNs(mic, pathSteadyUDP4), pathNs(mic, pathTrackedUDP4), pathNs(mic, pathSwap)
	if math.IsNaN(steady) || math.IsNaN(swap) {
		return ""
	}
	s := fmt.Sprintf("Through BPF_PROG_TEST_RUN (Microbenchmarks) the program costs %s ns per UDP/IPv4 packet of an established flow on a clean table slot, against %s ns for the MAC swap", f(steady, 1), f(swap, 1))
	if !math.IsNaN(tracked) {
		s += fmt.Sprintf(", and %s ns when the flow table is read as well (FlowTracking always)", f(tracked, 1))
	}
	return s + ". "
}

func writeHeadline(b *strings.Builder, m map[string]Result, mic *Micro) {
	b.WriteString("The issue's goals against this run (rates' ratios rounded down, prog.Run cost ratios rounded up: never in halo's favour; \"why\" where halo falls short). " +
		"halo rows run as halod does by default: a service whose table has not changed since it was installed sends each packet to its Maglev table slot's real and reads no flow table (bpf/lb_select.h).\n\n")
	b.WriteString("| Goal | Measured | Target | Verdict | Why |\n|---|---|---|---|---|\n")
	extra := strings.TrimSpace(costs(mic) + flowSpread(m))
	tx := pr(m, "halo-dr-32k", refTX)
	goal(b, "halo DR, 32k flows ÷ MAC-swap XDP_TX", floor(tx, 2), "≥ 0.95", tx >= 0.95, !math.IsNaN(tx), whyShort(tx >= 0.95, extra))
	// The rows below share the first row's reasons; each says what is
	// its own.
	same := "As for DR at 32k flows (first row)."
	if extra == "" {
		same = ""
	}
	redir := pr(m, "halo-dr-32k-redirect", refTX)
	for _, n := range []string{"halo-nat-in-32k", "halo-nat-out-32k", "halo-tun-32k"} {
		r := pr(m, n, refTX)
		meas := floor(r, 2)
		if s := skipOr(m, n); s != "" {
			meas = s
		}
		why := same
		if !math.IsNaN(redir) && n != "halo-nat-out-32k" {
			why += fmt.Sprintf(" Its frames leave through another interface (devmap redirect), as halo-dr-32k-redirect's, which reaches %s× here.", floor(redir, 2))
		}
		goal(b, n+" ÷ MAC-swap XDP_TX", meas, "≥ 0.85", r >= 0.85, !math.IsNaN(r), whyShort(r >= 0.85 || math.IsNaN(r), why))
	}
	for _, ref := range []string{refNft, refJh} {
		for _, n := range []string{"halo-dr-32k-redirect", "halo-dr-32k"} {
			r := pr(m, n, ref)
			ceil := pr(m, refTX, ref)
			if strings.HasSuffix(n, "redirect") {
				ceil = pr(m, refDrop, ref)
			}
			goal(b, n+" ÷ "+ref, floor(r, 2), "≥ 6", r >= 6, !math.IsNaN(r), whyShort(r >= 6, fmt.Sprintf(
				"generator, program and sink share one CPU on veth, so the lab's own cost bounds every XDP row: a program that did nothing but %s would reach %s× here. ",
				map[bool]string{true: "count and drop", false: "swap MACs"}[strings.HasSuffix(n, "redirect")], floor(ceil, 2))+same))
		}
	}
	writeProgGoals(b, mic)
	if mic != nil && mic.SyncSkip == "" {
		s := mic.SyncWall.Seconds()
		goal(b, "map sync, 1,000 services × 100 reals", fmt.Sprintf("%.2f s wall (%.2f s CPU)", s, mic.SyncCPU.Seconds()), "≤ 2 s", s <= 2, true,
			fmt.Sprintf("wall time on the shared machine (%s); the apply itself used %.2f s of CPU.", loadAvg(), mic.SyncCPU.Seconds()))
	} else if mic != nil {
		goal(b, "map sync, 1,000 services × 100 reals", "skipped: "+mic.SyncSkip, "≤ 2 s", false, false, "")
	}
	if mic != nil && mic.ChecksSkip == "" {
		why := ""
		if f := regexp.MustCompile(`([0-9.]+) checks/s`).FindStringSubmatch(mic.ChecksLine); f != nil && atof(f[1]) < 9500 {
			why = fmt.Sprintf("%s checks per second were made of the 10,000 asked (%s), so the machine, not only the checker, limited the run.", f[1], loadAvg())
		}
		goal(b, "10,000 TCP checks at delay_loop 1 s", fmt.Sprintf("%.3f cores", mic.ChecksCores), "≤ 0.5 core", mic.ChecksCores <= 0.5, true, why)
	} else if mic != nil {
		goal(b, "10,000 TCP checks at delay_loop 1 s", "skipped: "+mic.ChecksSkip, "≤ 0.5 core", false, false, "")
	}
	writeTracking(b, m)
}

// writeProgGoals: the prog.Run goal is about an established flow,
// which halod now forwards from its table slot; the flow-table hit (every
// packet with FlowTracking always, and a dirty slot's flows after a
// change) is shown beside it against the same target, so the old cost
// stays in view.
func writeProgGoals(b *strings.Builder, mic *Micro) {
	swap := pathRounds(mic, pathSwap)
	steady, tracked, changed := pathNs(mic, pathSteadyUDP4), pathNs(mic, pathTrackedUDP4), pathNs(mic, pathChangedUDP4)
	swapNs := Median(swap)
	rows := []struct {
		what, path, why string
	}{
		{"prog.Run: established flow as halod runs it (table slot, no flow-table lookup) ÷ baseline program", pathSteadyUDP4,
			fmt.Sprintf("%s ns per UDP/IPv4 packet against %s ns for the MAC swap: the packet's parsing, the service lookup, the 5-tuple hash, the table slot (the service's inner map, then its 16-slot chunk), flow_seen's word (UDP), the real's entry and the per-CPU counters; the MAC swap looks nothing up. In the latest profile made by hand (Method) no part dominates: the service lookup takes about a sixth of the program's time; the per-CPU state and counters, flow_seen, the table slot, the hash and the real's entry a tenth or less each.", f(steady, 1), f(swapNs, 1))},
		{"prog.Run: flow-table hit, FlowTracking always ÷ baseline program", pathTrackedUDP4,
			fmt.Sprintf("%s ns per hit: the table-slot path's work and, on top, the flow-table lookup (a kernel hash-map call) and the entry's checks; %s ns more than the table slot in the same rounds.", f(tracked, 1), f(tracked-steady, 1))},
		{"prog.Run: flow-table hit on a slot a change made dirty (default tracking) ÷ baseline program", pathChangedUDP4,
			fmt.Sprintf("%s ns per hit: after a change of the real set, flows on the changed slots pay the flow-table lookup as with FlowTracking always, until halod clears the slot (idle timeouts after the change).", f(changed, 1))},
	}
	for _, r := range rows {
		rr := PairedRatio(pathRounds(mic, r.path), swap)
		why := r.why
		if math.IsNaN(swapNs) {
			why = ""
		}
		// A cost ratio: rounded up, so a printed 1.50 means at most 1.50.
		goal(b, r.what, ceil(rr, 2), "≤ 1.5", rr <= 1.5, !math.IsNaN(rr), whyShort(rr <= 1.5, why))
	}
}

// flowSpread says what many flows cost over one, from the two DR rows of
// this run: with 32k flows every packet reads another table slot (and, UDP,
// another word of flow_seen), which the caches hold less well.
func flowSpread(m map[string]Result) string {
	a, b := med(m, "halo-dr-1flow"), med(m, "halo-dr-32k")
	if math.IsNaN(a) || math.IsNaN(b) || a <= 0 || b <= 0 {
		return ""
	}
	spread := fmt.Sprintf("With one flow halo DR reaches %s× the MAC swap; at 32k flows each packet reads another slot of the service's table "+
		"(%d slots of 4 bytes) and another word of flow_seen (%d KiB)", floor(pr(m, "halo-dr-1flow", refTX), 2), xdp.RingSize, xdp.SeenEpochBytes(xdp.FlowTableSize)/1024)
	if d := 1000/b - 1000/a; d > 0 {
		spread += fmt.Sprintf(", and pays %s ns more per packet in this lab (%s vs %s Mpps; no cycle counters here to break it down further).", f(d, 0), f(a, 3), f(b, 3))
	} else {
		spread += fmt.Sprintf(", which cost nothing measurable in this lab (%s Mpps with one flow, %s with 32k).", f(a, 3), f(b, 3))
	}
	if c := med(m, "halo-dr-32k-ft32k"); !math.IsNaN(c) && c > 0 {
		spread += fmt.Sprintf(" With a flow table sized for the flows there are (flow_table_size 32768, flow_seen %d KiB) the same 32k flows reach %s× the MAC swap "+
			"(halo-dr-32k-ft32k): flow_seen is 8 bits per flow-table entry, and a bitmap that stays in the caches costs less per packet.",
			xdp.SeenEpochBytes(32768)/1024, floor(pr(m, "halo-dr-32k-ft32k", refTX), 2))
	}
	return spread
}

// tableKeys are the reasons of a packet that looked its flow up in the
// flow table (one each; ct_expired is followed by one of them).
var tableKeys = []string{"ct_hit", "ct_new", "ct_prev", "ct_stale", "ct_miss", "ct_flood"}

// tableShare is how many of a halo row's VIP packets looked up the flow
// table and how many went by the table slot alone (ring); ok is false for
// a row with neither (NAT replies).
func tableShare(c map[string]uint64) (table, ring uint64, ok bool) {
	for _, k := range tableKeys {
		table += c[k]
	}
	ring = c["ring"]
	return table, ring, table+ring > 0
}

// writeTracking compares the steady rows with flow tracking on every
// packet and with a service whose table just changed.
func writeTracking(b *strings.Builder, m map[string]Result) {
	names := []string{"halo-dr-32k", "halo-dr-32k-ft32k", "halo-dr-32k-tracked", "halo-dr-32k-changed", "halo-dr-newflows", "halo-dr-newflows-insert"}
	ran := false
	for _, n := range names {
		if !math.IsNaN(med(m, n)) {
			ran = true
		}
	}
	if !ran {
		return
	}
	b.WriteString("\nThe flow table's share, same run: the steady state against the flow table read on every packet (FlowTracking always, " +
		"the design before layout v8) and against a service one real joined after the warm-up. \"Through the flow table\" is from halo's reason counters over the measured runs. " +
		"The × halo-dr-32k column is rounded up, so it never overstates what the table slot gains over the flow table.\n\n")
	b.WriteString("| Scenario | Mpps (median) | × MAC swap TX | × halo-dr-32k | through the flow table |\n|---|---|---|---|---|\n")
	for _, n := range names {
		r, ok := m[n]
		if !ok {
			continue
		}
		if s := skipOr(m, n); s != "" {
			fmt.Fprintf(b, "| %s | %s | | | |\n", n, s)
			continue
		}
		share := "–"
		if t, rg, ok := tableShare(r.Counters); ok {
			share = fmt.Sprintf("%d of %d VIP packets (%s %%)", t, t+rg, f(100*float64(t)/float64(t+rg), 1))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", n, f(med(m, n), 3), floor(pr(m, n, refTX), 2), ceil(pr(m, n, "halo-dr-32k"), 2), share)
	}
	if r, ok := m["halo-dr-newflows-insert"]; ok && r.Counters["ct_prev"] > 0 {
		fmt.Fprintf(b, "\nhalo-dr-newflows-insert counted %d of its new flows as ct_prev: flow_seen is a set of 2^20 hash bits, so a new UDP flow whose bit an earlier flow set is taken for an older one; with FlowTracking always a slot's previous real is its current one, so such a flow goes to the same real and is recorded all the same.\n",
			r.Counters["ct_prev"])
	}
}

func whyShort(met bool, why string) string {
	if met {
		return ""
	}
	return why
}

func writeMicro(b *strings.Builder, mic *Micro, haveFO bool, foPNG string) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("\n## Microbenchmarks\n\n### Program paths (BPF_PROG_TEST_RUN, repeat %d, median of 5 rounds)\n\n", mic.Repeat)
	if mic.PathErr != "" {
		w("Not measured: %s\n", mic.PathErr)
	} else {
		w("halo's program (loaded through pkg/dataplane/xdp, the lab's services installed, nothing attached) and the bench baselines, interleaved in the same rounds of one process. " +
			"halo is loaded three times: as halod runs it (an established flow on a clean table slot: no flow-table lookup), with FlowTracking always (every packet looks its flow up: the flow-table hit, the design before layout v8), " +
			"and as halod runs it after a third real joined the UDP/IPv4 service (a flow on a slot the change made dirty: a flow-table hit). " +
			"Before the rounds each path's packet is run once and must count the reason it is named after (ring, ct_hit, pass_*), or the table is not written.\n\n")
		w("| Path | ns/packet (median) | min–max | × MAC-swap baseline (median of the rounds' ratios, rounded up) |\n|---|---|---|---|\n")
		base := pathRounds(mic, pathSwap)
		for _, p := range mic.Paths {
			lo, hi := MinMax(p.NsPkt)
			w("| %s | %s | %s–%s | %s |\n", p.Name, f(Median(p.NsPkt), 1), f(lo, 0), f(hi, 0), ceil(PairedRatio(p.NsPkt, base), 2))
		}
	}
	if len(mic.GoldenLines) > 0 {
		w("\n`go test -run '^$' -bench '^BenchmarkGolden$' -benchtime 1x ./pkg/dataplane/xdp` (the golden fixtures as benchmark, run separately):\n\n```\n%s\n```\n", strings.Join(mic.GoldenLines, "\n"))
	} else if mic.GoldenSkip != "" {
		w("\nBenchmarkGolden: not run (%s).\n", mic.GoldenSkip)
	}
	w("\n### Maglev table build (pkg/maglev, %d slots, best of the rounds)\n\n", 16381)
	if mic.MaglevErr != "" {
		w("Not measured: %s\n", mic.MaglevErr)
	} else {
		w("| Reals | ms per table |\n|---|---|\n")
		for _, n := range []int{10, 100, 1000} {
			w("| %d | %.2f |\n", n, mic.MaglevMs[n])
		}
	}
	w("\n### Map sync: 1,000 services × 100 reals into fresh maps\n\n")
	if mic.SyncSkip != "" {
		w("Skipped: %s\n", mic.SyncSkip)
	} else {
		w("Apply of the whole set: %v wall, %v CPU (this process); one weight change after it: %v.\n", mic.SyncWall.Round(1e6), mic.SyncCPU.Round(1e6), mic.SyncOne.Round(1e3))
	}
	w("\n### Health checker CPU: 10,000 TCP checks at delay_loop 1 s\n\n")
	if mic.ChecksSkip != "" {
		w("Not run: %s\n", mic.ChecksSkip)
	} else {
		w("`go test -run '^$' -bench '^BenchmarkTCPChecks$' -benchtime 1x ./pkg/check`: %s\n", mic.ChecksLine)
	}
	w("\n### VRRP failover, halod vs keepalived\n\n")
	if mic.FailoverSkip != "" {
		w("Not run: %s\n", mic.FailoverSkip)
	} else {
		w("`go test -run '^$' -bench '^BenchmarkFailover$' -benchtime 1x ./tests/e2e`: time from SIGKILL of the master to the VIP answering the client's pings, both implementations in the same lab, VRRPv3.\n\n")
		w("```\nimpl        advert_int  min ms median ms    max ms\n%s\n```\n", strings.Join(mic.FailoverLines, "\n"))
		if haveFO {
			w("\n![failover time](%s)\n", foPNG)
		}
	}
}

func writeMethod(b *strings.Builder, o Options) {
	fmt.Fprintf(b, `
## Method

**Lab.** Three network namespaces made by internal/testkit/lab for this run and removed after it:

`+"```"+`
gen: g0 ──veth── l0 :lb (router / director) s0 ──veth── eth0 :sink
     10.240.0.2      10.240.0.1, VIP 10.240.0.100       10.240.1.11, 10.240.1.12 (the reals)
`+"```"+`

The program under test runs on l0. What it sends back out of l0 (XDP_TX) is counted by a counting XDP
program on g0; what it forwards or redirects through s0 is counted by the same program on the sink's eth0.
Both counters drop the frames after counting, so no receiving stack adds cost. A veth only accepts
redirected or transmitted xdp_frames when its peer runs an XDP program, so l0 carries halo's sink program
(XDP_PASS) whenever the kernel itself is under test. The lb namespace has forwarding on, reverse-path
filtering off and permanent neighbour entries for the reals, so ARP never stalls a run.

**Generator.** The kernel has no pktgen, so frames come from BPF_PROG_RUN in live-frames mode
(BPF_F_TEST_XDP_LIVE_FRAMES, cilium/ebpf RunOptions with Repeat %d and BatchSize %d) running the
generator program of bpf/bench/bench.c in the gen namespace with g0 as ingress: each run's XDP_TX
transmits the frame out of g0 into l0. Live-frame pages are recycled without being re-initialised, so a
frame that something downstream rewrote (MACs, TTL, NAT) would be sent again as rewritten: the generator
therefore writes the whole Ethernet/IP/L4 header from a template on every frame, then sets the source
port to 1024 + (n mod 16384) and adds n / 16384 to the source address (n counts frames; 32k flows =
16384 ports × 2 addresses), and patches the IPv4 header and L4 checksums incrementally, so the kernel
rows see valid packets. "Every frame a new flow" uses the running count itself. One generator thread:
on this machine a second one lowers the rate and loses frames.

**Rounds.** %d rounds; in each, every scenario in turn sets up its program or rules, sends a warm-up
that opens every flow twice (TCP: SYNs; the measured frames are then ACKs), is measured once and is
removed. Interleaving the scenarios spreads the shared machine's changing load over all of them; a ratio
is taken within a round and the report gives the median of the rounds. A measurement's rate is the
frames counted at the sink divided by the time the generating call took (the counter is read again until
it stops moving). "delivered" is counted ÷ generated. After each measurement a sampled frame from the
sink is checked for the scenario's shape (halo DR: a real's MAC as destination, l0's as source, the VIP
kept; kernel and nftables: the sink's MAC, TTL 63, a real's address; MAC swap: the generator's MAC),
and the IPv4 header checksum of the sample is verified.

**halo** is loaded through pkg/dataplane/xdp's public API (New with l0, Apply), so the run measures
whatever bpf/lb.c is at the time. Services: VIP:9/UDP and VIP:80/TCP (and the same on IPv6), two reals,
scheduler rr, which halo's XDP path resolves through the weighted Maglev table by the 5-tuple's hash, so
the generator's flows spread over the table's slots (mh would hash the source address alone and put the
32k flows of the generator's two addresses on two slots). Reals resolve to fixed MACs reached back through
l0 (XDP_TX), or, in the -redirect row, to the sink behind s0 (devmap redirect, the path the kernel rows
take). halo runs as halod does by default (flow tracking on change, bpf/lb_select.h): the services are
installed once and not changed, so every packet goes to its table slot's real and no packet reads or
writes the flow table (reason counter `+"`ring`"+`); NAT replies find the client's next hop in client_nh,
noted on a flow's first packet in the warm-up. Three rows show the flow table's cost: -tracked runs with
FlowTracking always (every slot marked dirty: every packet looks its flow up, the first packets of the
warm-up recorded it, the design before layout v8); -changed installs the two reals, warms up, then adds a
third real to VIP:9/UDP before the measured run, so the slots whose real changed are dirty and their
flows' packets look up the flow table (each flow older than the change is recorded on its first packet
after it, on its previous real, and hits from then on); newflows-insert sends every frame as a new flow
with FlowTracking always and no new-entry budget, so every packet is a miss and an insert. newflows sends
every frame as a new flow to the steady service with halod's default budget (20,000 new entries per
second and CPU), which it never uses: nothing is recorded on a clean slot. The other rows run without the
budget. halo's reason counters above show, per row, how many packets went by the table slot (`+"`ring`"+`)
and how many through the flow table (`+"`ct_*`"+`). NAT and TUN rows run when the backend accepts those
services and say why otherwise.

**nftables** rows load, in the lb namespace,
`+"`ip daddr VIP udp dport 9 dnat to numgen inc mod 2 map { 0 : real1, 1 : real2 }`"+` (or
`+"`jhash ip saddr . udp sport mod 2`"+`) in a nat prerouting chain; conntrack is flushed after each row.
The kernel row forwards to a real's address without rules. IPVS: this kernel has none (no CONFIG_IP_VS).

**Caveats.** veth runs the receiver's NAPI on the sending CPU, so generator, program under test and sink
share one CPU and every rate is a combined cost; the machine is shared with other work, so absolute rates
move from run to run while the ratios of one run hold. Cycle counters are used only where perf has them.

**Profile of the hit path of the design before layout v8** (made by hand while tuning, 2026-12-01, not by
this run; then every packet of an established flow looked up the flow table, which halod now does only with
FlowTracking always or on a slot a change made dirty): `+"`perf record -e cpu-clock -a`"+` while a test binary ran
one UDP/IPv4 flow-table hit through prog.Run in a loop; samples inside the JIT image were mapped to source
lines with the program's jited line info (cilium/ebpf ProgramInfo.JitedLineInfos). Of the program's own time
(the test-run loop itself excluded) the flow-table lookup took about 40 %%: the kernel's hash-map call (jhash
of the key, bucket walk, key compare) and the LRU reference bit; the per-CPU state, the real's entry, the
counter updates and the parsing much of the rest. Before that tuning the service lookup, a second hash-map
call, and the clock helper came on top (see the git log of bpf/lb.c).

**Profile of the table-slot path** (made by hand, 2026-12-01 06:50 UTC, the program of commit 331f0be,
not by this run), the same way: one UDP/IPv4 packet of an established flow through prog.Run, 10 × 2,000,000
repeats, as halod runs it and with FlowTracking always; samples grouped by the source function their JIT
line belongs to. Of the program's time (its JIT image and the kernel map helpers it calls; the test-run
loop and the verifier excluded), table slot: the 5-tuple hash (flow_hash5: ten mix32 rounds, two
multiplies each) 25 %%; the service lookup (vip_index, then svc_meta and the key compare) 14 %%; flow_seen
8 %%; the service's and the real's counters 8 %%; the per-CPU state and reason counters 6 %%; the table slot
itself (outer and inner array lookup) 5 %%; the rest (parsing, config, the real's entry, the frame rewrite)
about a third. With FlowTracking always the flow-table lookup comes on top: the kernel's hash-map call
alone took 18 %% of that program's time. The design before layout v8 found an established flow's real with
that one flow-table lookup and did neither the hash nor, on a hit, the service lookup. Built from 5e2a7cb~1
and run through the same prog.Run measurement in alternation with commit 331f0be (three times each, repeat
300,000, load average about 1): its hit 112–133 ns (3.00–3.39 × the MAC swap), the table slot 129–153 ns
(3.44–3.76 ×), the FlowTracking always hit 170–203 ns (4.45–5.17 ×): per packet through prog.Run the table
slot costs 16–36 ns more than the old hit did (the hash and the service lookup, about 39 %% of its time,
in place of the old hit's one flow-table lookup); what it saves is
the flow table's memory at many flows (halo-dr-32k against halo-dr-32k-tracked above).

**Profile of the table-slot path with the murmur3 hash** (made by hand, 2026-12-01 10:30 UTC, program of
commit 1dab057, not by this run). prog.Run, one UDP/IPv4 flow, the minimum of 3 s of 1,000,000-repeat runs,
this program and that of 8430188 (mix32 hash, slot read in the global function, remainder by a loaded
divisor) alternated four times: 90–96 ns against 105–114 ns. The same line mapping while the live-frames
scenario halo-dr-32k ran (`+"`perf record -e cpu-clock -a`"+` for 5 s in the middle of a 40,000,000-frame run):
halo's program took 22 %% of all samples (26 %% of the busy time; veth's receive and transmit, the test-run
loop, the page pool and the generator and sink programs the rest), and of the program's own samples the
read of the flow's flow_seen words took about a third (30 %% on the load itself: cache misses, as 32k flows touch every line of the 512 KiB the UDP
epochs take at the default flow-table size), the table slot 12 %% (its 64 KiB table), the per-CPU state and
counters 10 %%, the service lookup 11 %%, the hash 4 %%. Those samples are where the CPU waited, not what
bounds the rate: a variant of the program without the flow_seen read (built for the comparison, not kept)
did not forward measurably faster, two alternated runs of 4 rounds × 2,000,000 frames each giving
halo-dr-32k 0.71 and 0.77 × MAC swap against 0.76 and 0.74. With halo's program at about a quarter of the
busy time and veth, the test-run loop and the page pool at most of the rest, 0.95 × the MAC swap would need
a program about three times cheaper than this one.

**Profiles and changes of the afternoon** (made by hand, 2026-12-01 12:30–13:10 and 15:20 UTC, not by this run).
prog.Run A/B in one process (two programs loaded side by side, 25 interleaved rounds of 400,000 repeats,
minimum): counting each packet once, on its (service, real) entry, with the service's counters summed in
Go (commit 6cde243), TCP/IPv4 90 → 84 ns, UDP/IPv4 93 → 87 ns, UDP/IPv6 111 → 101 ns; a real behind another
interface carrying its egress interface's index, so a redirected frame reads its source MAC and devmap slot
from two arrays instead of two hash maps (920eb9f), TCP/IPv4 148 → 115 ns, UDP/IPv4 151 → 118 ns, UDP/IPv6
159 → 137 ns. NAT replies that leave by another interface take the index too, from the next hop's entry
(b367498; the same program with the entry's index zeroed, which is the path of entries an older halod wrote,
25 interleaved rounds of 20,000 single runs, program time from the kernel's run-time statistics, median):
TCP/IPv4 433 → 410 ns, UDP/IPv4 378 → 337 ns, UDP/IPv6 371 → 337 ns (single runs start with cold caches;
the lab's halo-nat-out-32k replies leave by the interface they came in by, so no live row moves). A packet
neither for a VIP nor from a NAT real no longer looks rnat up unless rnat_filter (rnat's keys by the hash
vip_index uses) has its entry (ffd0ee8; the same program with the filter full, which is the old path, and
empty, 25 interleaved rounds of 400,000 repeats, minimum): non-VIP IPv4 70 → 45 ns, IPv6 70 → 45 ns; a NAT
reply pays one inline array read more. Live profiles (the line mapping above, 5 s inside 8,000,000-frame runs, program of 920eb9f~):
the flow_seen read is 41 %% of the program's samples in halo-dr-32k, 34 %% in halo-nat-in-32k and 25 %% in
halo-tun-32k (cache misses: the 32k flows' bits are spread over the 512 KiB of the UDP epochs, the size of
this CPU's L2); NAT in and TUN leave by redirect in this lab (their reals sit behind another interface), where
the if_macs and tx_ports hash lookups took about 4 %% of all samples before the egress index; in
halo-nat-out-32k the reverse-NAT and client next-hop hash lookups take about 12 %% of all samples. The
flow_seen read is the price of keeping flows without per-flow state: a Bloom-style bitmap read per packet
instead of a flow-table lookup (halo-dr-32k-tracked above); a smaller bitmap would miss less and mistake
more new flows for old ones, so its size stays at 8 bits per flow-table entry.

**Commands.** `+"`make bench`"+` (everything, writes this file), `+"`make bench-quick`"+` (every scenario once with
50,000 frames, no report; the smoke test of `+"`make test`"+` is `+"`go test -run TestQuick ./pkg/bench`"+`),
`+"`go run ./cmd/halo-bench --only halo-dr,nft --runs 9`"+` for a subset.
`, o.Packets, o.Batch, o.Runs)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	return "load average " + strings.Fields(string(b))[0]
}

func atof(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}
