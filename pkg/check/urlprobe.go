package check

import "time"

// urlWalk is keepalived's per-URL pacing for HTTP_GET and SSL_GET
// (docs/keepalived.md#http_get-and-ssl_get): one attempt fetches one URL,
// the next URL follows delay_loop later, and a server that failed comes back
// only after its failed URL passes and then every URL passes again in turn.
// fast_recovery drops the delay_loop between URLs while the server is on
// its way up (at start and after a failure).
type urlWalk struct {
	n       int
	fast    bool
	cursor  int  // URL of the next attempt (keepalived's url_it)
	failed  int  // URL that took the server down, -1: none (failed_url)
	retries int  // failures of the current URL so far (retry_it)
	hasRun  bool // a whole pass or a failure has been seen (has_run)
}

// WalkURLs switches the probe to per-URL attempts over n URLs. The
// scheduler calls it for checkers with url blocks.
func (p *Probe) WalkURLs(n int, fastRecovery bool) {
	p.urls = &urlWalk{n: max(n, 1), fast: fastRecovery, failed: -1}
}

// URL is the index of the URL the next attempt fetches (0 without url
// walking).
func (p *Probe) URL() int {
	if p.urls == nil {
		return 0
	}
	return p.urls.cursor
}

// recordURL follows keepalived 2.2.7's HTTP checker epilog: the result is
// that of URL p.URL().
func (p *Probe) recordURL(now time.Time, r Result) bool {
	u := p.urls
	changed := false
	var delay time.Duration
	if r.Err == nil {
		u.cursor++
		u.retries = 0
		switch {
		case u.cursor == u.n && u.failed < 0:
			// Every URL passed in turn.
			if !p.up || !u.hasRun {
				changed = !p.up
				p.up, u.hasRun = true, true
			}
			u.cursor = 0
		case u.failed >= 0:
			// The URL that failed answers again: walk all of them anew.
			u.failed, u.cursor = -1, 0
		}
		delay = p.DelayLoop
		if !u.hasRun {
			// Before the first whole pass a later URL failing takes the
			// server down at once, without retries.
			u.retries = p.Retry
		}
		if u.fast && (!u.hasRun || !p.up) {
			delay = 0
		}
		p.next = now.Add(delay)
		return changed
	}
	if p.up || !u.hasRun {
		u.hasRun = true
		u.retries++
		if u.retries > p.Retry {
			if p.up {
				p.up, changed = false, true
			}
			u.failed = u.cursor
		}
	}
	// A server already down retries the same URL. keepalived 2.2.7 with
	// fast_recovery retries a URL failing during recovery at once, over and
	// over; halo keeps delay_before_retry there.
	delay = p.DelayBeforeRetry
	if u.failed >= 0 {
		delay = max(p.DelayBeforeRetry, p.DelayLoop)
	}
	p.next = now.Add(delay)
	return changed
}
