package lab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTPGet opens a new TCP connection from inside the namespace, sends one
// HTTP/1.0 GET and returns the body, trimmed. The socket is created on the
// namespace's thread (http.Client would dial from another goroutine, in
// another namespace), so every call is a new flow as a client would make it.
func (n *NS) HTTPGet(hostport, path string, timeout time.Duration) (string, error) {
	var body string
	err := n.Do(func() error {
		c, err := net.DialTimeout("tcp", hostport, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, hostport)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = strings.TrimSpace(string(b))
		return err
	})
	return body, err
}
