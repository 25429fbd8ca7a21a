// Package track follows what VRRP instances track (vrrp_script,
// track_interface, track_file) and turns it into an effective priority or
// FAULT (docs/keepalived.md#tracking-and-effective-priority). The
// arithmetic and the rise/fall hysteresis are pure; the watchers that feed
// them do the I/O.
package track

// Item is one tracked object as an instance sees it.
type Item struct {
	Name    string
	Weight  int  // 0: failure means FAULT
	Reverse bool // turn the weight's direction round (weight 0 reverse: FAULT while up)
	OK      bool // script / interface status
	// File is set for track_file items: Value × Weight is added instead.
	File  bool
	Value int
	// Unknown is a script tracker that has not reported yet: it adds,
	// subtracts and faults nothing (keepalived applies a script's weight
	// only after its first result).
	Unknown bool
}

// Pending names the first weight-0 script that has not reported yet, or is
// "". keepalived 2.2.7 shows no state for an instance tracking one until
// its first result, with or without init_fail: no FAULT first, then FAULT
// or BACKUP (docs/keepalived.md#init_fail-measured). A weighted script
// moves nothing until its first result, init_fail or not (measured: weight
// -60 on base 150 notified BACKUP 150 at start).
func Pending(items []Item) string {
	for _, it := range items {
		if it.Unknown && it.Weight == 0 {
			return it.Name
		}
	}
	return ""
}

// Effective computes an instance's priority from its base priority and
// tracked items: positive weights add while OK, negative weights subtract
// while failed (reverse: the other way round, at the same moments), weight
// 0 failures mean FAULT. The result is clamped to
// 1..254; the owner (255) is never changed. fault names the first item that
// forces FAULT.
func Effective(base int, items []Item) (prio int, fault string) {
	if base == 255 {
		for _, it := range items {
			if it.Weight == 0 && !it.ok() && !it.Unknown {
				return 255, it.Name
			}
		}
		return 255, ""
	}
	p := base
	for _, it := range items {
		if it.Unknown {
			continue
		}
		if it.File {
			v := it.Value
			if it.Reverse {
				v = -v
			}
			if it.Weight == 0 {
				if v != 0 {
					return clamp(p), it.Name
				}
				continue
			}
			delta := v * it.Weight
			if delta < -253 {
				return clamp(p), it.Name
			}
			p += delta
			continue
		}
		// reverse keeps when a weight applies (a positive one while OK,
		// a negative one while failed) and turns its direction round, as
		// keepalived 2.2.7 does (docs/keepalived.md#tracking-and-effective-priority);
		// only weight 0 reads the status inverted (FAULT while up).
		w := it.Weight
		if it.Reverse {
			w = -w
		}
		switch {
		case it.Weight == 0:
			if !it.ok() {
				return clamp(p), it.Name
			}
		case it.Weight > 0 && it.OK:
			p += w
		case it.Weight < 0 && !it.OK:
			p += w
		}
	}
	return clamp(p), ""
}

func (it Item) ok() bool { return it.OK != it.Reverse }

func clamp(p int) int { return max(1, min(254, p)) }

// Hysteresis is vrrp_script's rise/fall: the status changes only after
// rise consecutive successes or fall consecutive failures.
type Hysteresis struct {
	Rise, Fall int
	ok         bool
	run        int // consecutive results against the current status
}

// NewHysteresis starts OK, or failed with init_fail. An init_fail start is
// one passing run away from OK whatever rise is, as keepalived 2.2.7 sets
// its counter to rise-1 (docs/keepalived.md#init_fail-measured); a run that
// actually fails resets it, and then rise passing runs are needed.
func NewHysteresis(rise, fall int, initFail bool) *Hysteresis {
	h := &Hysteresis{Rise: max(1, rise), Fall: max(1, fall), ok: !initFail}
	if initFail {
		h.run = h.Rise - 1
	}
	return h
}

// OK is the current status.
func (h *Hysteresis) OK() bool { return h.ok }

// Add records one result and reports whether the status changed.
func (h *Hysteresis) Add(success bool) bool {
	if success == h.ok {
		h.run = 0
		return false
	}
	h.run++
	need := h.Fall
	if success {
		need = h.Rise
	}
	if h.run >= need {
		h.ok = success
		h.run = 0
		return true
	}
	return false
}
