package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// web is a real server: an HTTP server in its namespace that can be stopped
// (its port closed, as a crashed service) and started again.
type web struct {
	t    lab.T
	ns   *lab.NS
	name string
	mu   sync.Mutex
	srv  *http.Server
}

func (w *web) start() {
	w.t.Helper()
	var l net.Listener
	if err := w.ns.Do(func() (err error) { l, err = net.Listen("tcp", "0.0.0.0:80"); return err }); err != nil {
		w.t.Fatalf("%s: listen: %v", w.name, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintf(rw, "hello from %s\n", w.name) })
	mux.HandleFunc("/big", serveBig)
	srv := &http.Server{Handler: mux}
	w.mu.Lock()
	w.srv = srv
	w.mu.Unlock()
	go srv.Serve(l)
}

// stop closes the listener and every open connection.
func (w *web) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		w.srv.Close()
		w.srv = nil
	}
}

// Download shape: bigChunks chunks of bigChunk bytes, one every bigPace, so
// a download lasts long enough to crash a director in its middle.
const (
	bigChunk  = 16 << 10
	bigChunks = 256
	bigPace   = 25 * time.Millisecond
)

// bigByte is the content at offset i: the client checks every byte.
func bigByte(i int) byte { return byte(i % 251) }

func serveBig(rw http.ResponseWriter, _ *http.Request) {
	rw.Header().Set("Content-Length", strconv.Itoa(bigChunk*bigChunks))
	buf := make([]byte, bigChunk)
	fl, _ := rw.(http.Flusher)
	for c := 0; c < bigChunks; c++ {
		for i := range buf {
			buf[i] = bigByte(c*bigChunk + i)
		}
		if _, err := rw.Write(buf); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		time.Sleep(bigPace)
	}
}

// download is one GET /big from the client through the VIP: it reports the
// longest pause between two reads (what a user sees of a failover) and
// checks every byte.
type download struct {
	started chan struct{} // closed once the first bytes arrived
	done    chan struct{}
	bytes   int
	stall   time.Duration
	err     error
}

func startDownload(client *lab.NS, hostport string, timeout time.Duration) *download {
	d := &download{started: make(chan struct{}), done: make(chan struct{})}
	var c net.Conn
	// The socket is made inside the client's namespace; reading it from any
	// goroutine afterwards is fine.
	if err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", hostport, 3*time.Second); return err }); err != nil {
		d.err = err
		close(d.started)
		close(d.done)
		return d
	}
	go func() {
		defer close(d.done)
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		fmt.Fprintf(c, "GET /big HTTP/1.0\r\nHost: %s\r\n\r\n", hostport)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			d.err = err
			close(d.started)
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 64<<10)
		last := time.Now()
		first := true
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				now := time.Now()
				if first {
					close(d.started)
					first = false
				} else if gap := now.Sub(last); gap > d.stall {
					d.stall = gap
				}
				last = now
				for i := 0; i < n; i++ {
					if buf[i] != bigByte(d.bytes+i) {
						d.err = fmt.Errorf("byte %d is %d, want %d", d.bytes+i, buf[i], bigByte(d.bytes+i))
						return
					}
				}
				d.bytes += n
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				d.err = err
				break
			}
		}
		if first {
			close(d.started)
		}
		if d.err == nil && d.bytes != bigChunk*bigChunks {
			d.err = fmt.Errorf("got %d bytes, want %d", d.bytes, bigChunk*bigChunks)
		}
	}()
	return d
}
