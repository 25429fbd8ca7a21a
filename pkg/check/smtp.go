package check

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SMTP is SMTP_CHECK: read a 220 banner, send HELO, expect 250, QUIT.
type SMTP struct {
	T    Target
	Helo string
}

// Name implements Checker.
func (*SMTP) Name() string { return "SMTP_CHECK" }

// Check implements Checker.
func (c *SMTP) Check(ctx context.Context) Result {
	conn, err := c.T.dialer("tcp").DialContext(ctx, "tcp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	buf := make([]byte, 4096)
	readCode := func() (int, error) {
		var line []byte
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return 0, err
			}
			line = append(line, buf[:n]...)
			// Multi-line replies use "250-"; the last line has "250 ".
			lines := strings.Split(strings.TrimRight(string(line), "\r\n"), "\n")
			last := strings.TrimRight(lines[len(lines)-1], "\r")
			if strings.HasSuffix(string(line), "\n") && len(last) >= 4 && last[3] == ' ' {
				return strconv.Atoi(last[:3])
			}
			if len(line) > 64<<10 {
				return 0, errors.New("reply too long")
			}
		}
	}
	code, err := readCode()
	if err != nil {
		return failf("banner: %v", err)
	}
	if code != 220 {
		return failf("banner code %d", code)
	}
	if _, err := fmt.Fprintf(conn, "HELO %s\r\n", c.Helo); err != nil {
		return fail(err)
	}
	if code, err = readCode(); err != nil || code != 250 {
		return failf("HELO answered %d %v", code, err)
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	return ok()
}
