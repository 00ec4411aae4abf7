package allauthtest

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// gunicorn hands Django an X-Session-Token value with its leading blanks
// stripped but its trailing blanks kept, so a token followed by a space is
// unknown (410). net/http trims both ends before a handler sees the value, so
// the server watches the raw bytes of each connection and keeps, per request,
// the untrimmed X-Session-Token lines. This only follows simple framing
// (Content-Length bodies); on anything else (chunked bodies, folded header
// lines, oversized headers) it gives up for that connection and the handler
// falls back to the trimmed values from net/http.

const (
	maxHeaderBytes = 64 << 10 // like Django's runserver: larger headers are refused
	maxQueued      = 64       // raw header records kept per connection
)

type rawConnKey struct{}

// rawListener wraps every accepted connection in a rawConn.
type rawListener struct{ net.Listener }

func (l *rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c}, nil
}

// rawRecord is what the raw stream said about one request.
type rawRecord struct {
	method, target string
	tokens         []string // untrimmed X-Session-Token values, in order
}

// rawConn records raw X-Session-Token header lines of requests read from it.
type rawConn struct {
	net.Conn

	mu       sync.Mutex
	lost     bool
	buf      []byte // unfinished header block
	bodyLeft int64  // body bytes still to skip
	queue    []rawRecord
}

func (c *rawConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.feed(p[:n])
	}
	return n, err
}

func (c *rawConn) feed(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 && !c.lost {
		if c.bodyLeft > 0 {
			k := int64(len(p))
			if k > c.bodyLeft {
				k = c.bodyLeft
			}
			c.bodyLeft -= k
			p = p[k:]
			continue
		}
		// Skip blank lines between requests.
		if len(c.buf) == 0 {
			p = bytes.TrimLeft(p, "\r\n")
			if len(p) == 0 {
				return
			}
		}
		start := len(c.buf)
		c.buf = append(c.buf, p...)
		end := headerEnd(c.buf, start)
		if end < 0 {
			if len(c.buf) > maxHeaderBytes {
				c.giveUp()
			}
			return
		}
		consumed := end - start
		block := c.buf[:end]
		p = p[consumed:]
		c.parseBlock(block)
		c.buf = c.buf[:0]
	}
}

func (c *rawConn) giveUp() {
	c.lost = true
	c.buf = nil
	c.queue = nil
}

// headerEnd returns the index just past the blank line ending the header
// block in b, searching from around from, or -1.
func headerEnd(b []byte, from int) int {
	from -= 3
	if from < 0 {
		from = 0
	}
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

func (c *rawConn) parseBlock(block []byte) {
	lines := strings.Split(string(block), "\n")
	var rec rawRecord
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if i == 0 {
			parts := strings.SplitN(line, " ", 3)
			if len(parts) != 3 {
				c.giveUp()
				return
			}
			rec.method, rec.target = parts[0], parts[1]
			continue
		}
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding
			c.giveUp()
			return
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			c.giveUp()
			return
		}
		name, value := line[:colon], line[colon+1:]
		switch {
		case strings.EqualFold(name, "X-Session-Token"):
			rec.tokens = append(rec.tokens, strings.TrimLeft(value, " \t\v\f"))
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			if err != nil || n < 0 {
				c.giveUp()
				return
			}
			c.bodyLeft = n
		case strings.EqualFold(name, "Transfer-Encoding"):
			c.giveUp()
			return
		}
	}
	if len(c.queue) >= maxQueued {
		c.giveUp()
		return
	}
	c.queue = append(c.queue, rec)
}

// take returns the raw X-Session-Token values recorded for r, and whether
// the record was found. Records of requests net/http answered itself are
// skipped.
func (c *rawConn) take(r *http.Request) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 {
		rec := c.queue[0]
		c.queue = c.queue[1:]
		if rec.method == r.Method && rec.target == r.RequestURI {
			return rec.tokens, true
		}
	}
	return nil, false
}

// sessionTokenHeader returns the X-Session-Token value as gunicorn would give
// it to Django: several headers joined with ",", leading blanks stripped,
// trailing blanks kept (when the raw bytes are known).
func sessionTokenHeader(r *http.Request) string {
	var vals []string
	raw := false
	if rc, ok := r.Context().Value(rawConnKey{}).(*rawConn); ok {
		vals, raw = rc.take(r)
	}
	if !raw {
		vals = r.Header.Values("X-Session-Token")
	}
	return strings.TrimLeft(strings.Join(vals, ","), " \t\v\f")
}
