package allauthtest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMount is where allauth's headless URLs are mounted unless WithMount
// says otherwise.
const DefaultMount = "/_allauth"

// DefaultSessionCookieName is Django's default SESSION_COOKIE_NAME, used
// unless WithSessionCookieName says otherwise.
const DefaultSessionCookieName = "sessionid"

// Server is a stand-in django-allauth headless server listening on a loopback
// port, in the spirit of httptest.Server. Create it with NewServer (or
// NewUnstartedServer and Start) and stop it with Close. All methods are safe
// for concurrent use, also while requests are being served.
type Server struct {
	// URL is the base URL of the running server, http://127.0.0.1:<port>,
	// without a trailing slash and without the mount path. It is empty until
	// the server is started.
	URL string

	// Listener is the loopback listener the server accepts on. NewUnstartedServer
	// creates it; a caller may replace it before Start.
	Listener net.Listener

	mount      string
	cookieName string

	mu       sync.Mutex
	users    map[string]*userRec // by username
	all      []*userRec          // every live user, in insertion order
	nextID   int
	sessions map[string]*session // by session key

	jwt *jwtState // nil unless WithJWT

	fault        atomic.Pointer[Fault]
	credFault    atomic.Pointer[credFault] // SetCredentialFault
	sessionCalls atomic.Int64
	lastHeader   atomic.Pointer[http.Header] // of the last session lookup
	inFlight     inFlight                    // session lookups being served (inflight.go)

	srv       *http.Server
	handler   http.Handler
	closing   chan struct{}
	closeOnce sync.Once
	started   atomic.Bool
	serveDone chan struct{}
	conns     sync.WaitGroup // open client connections (and so their handlers)
}

// Option configures a Server at creation.
type Option func(*Server)

// WithMount sets the path under which the headless API is served (default
// "/_allauth", as in most Django projects). A missing leading slash is added,
// a trailing slash removed; "" or "/" mounts the API at the root.
func WithMount(path string) Option {
	return func(s *Server) {
		path = strings.TrimRight(path, "/")
		if path != "" && !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		s.mount = path
	}
}

// WithSessionCookieName sets the name of the browser session cookie (Django's
// SESSION_COOKIE_NAME, default "sessionid"). An empty name keeps the default.
func WithSessionCookieName(name string) Option {
	return func(s *Server) {
		if name != "" {
			s.cookieName = name
		}
	}
}

// NewServer starts and returns a new Server listening on 127.0.0.1 on a free
// port. The caller must call Close when done. It panics if it cannot listen
// on loopback, as httptest.NewServer does.
func NewServer(opts ...Option) *Server {
	s := NewUnstartedServer(opts...)
	s.Start()
	return s
}

// NewUnstartedServer returns a new Server listening on 127.0.0.1 on a free
// port but not yet serving; call Start to serve. Close releases its listener
// even if it was never started. It panics if it cannot listen on loopback.
func NewUnstartedServer(opts ...Option) *Server {
	s := &Server{
		mount:      DefaultMount,
		cookieName: DefaultSessionCookieName,
		users:      make(map[string]*userRec),
		nextID:     1,
		sessions:   make(map[string]*session),
		closing:    make(chan struct{}),
		serveDone:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic("allauthtest: failed to listen on a loopback port: " + err.Error())
	}
	s.Listener = ln
	return s
}

// Start starts serving on s.Listener and sets s.URL. It panics if the server
// was already started or closed.
func (s *Server) Start() {
	if !s.started.CompareAndSwap(false, true) {
		panic("allauthtest: Server already started")
	}
	select {
	case <-s.closing:
		panic("allauthtest: Server already closed")
	default:
	}
	s.URL = "http://" + s.Listener.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if rc, ok := c.(*rawConn); ok {
				return context.WithValue(ctx, rawConnKey{}, rc)
			}
			return ctx
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateHijacked, http.StateClosed:
				s.conns.Done()
			default:
			}
		},
	}
	ln := &rawListener{Listener: s.Listener}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
}

// Close stops the server: it closes the listener and every client
// connection, idle or active, cancels running fault delays, and waits for
// all its goroutines (handlers and connections) to finish. Calling Close more
// than once is harmless.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		if !s.started.Load() {
			_ = s.Listener.Close()
			return
		}
		_ = s.srv.Close()
		<-s.serveDone
		s.conns.Wait()
	})
}

// Handler returns the server's http.Handler, to mount it in-process (for
// example under httptest or another mux). Served that way, header values
// arrive already trimmed by net/http, so the gunicorn rule "trailing spaces
// of X-Session-Token are kept" cannot be reproduced; everything else behaves
// as on s.URL. Requests it serves count in SessionCalls.
func (s *Server) Handler() http.Handler { return s.handler }

// Mount returns the path the headless API is mounted at, e.g. "/_allauth".
func (s *Server) Mount() string { return s.mount }

// SessionCookieName returns the name of the browser session cookie.
func (s *Server) SessionCookieName() string { return s.cookieName }

// SessionURL returns the URL of the session endpoint of client "app" or
// "browser", e.g. http://127.0.0.1:41234/_allauth/app/v1/auth/session.
func (s *Server) SessionURL(client string) string {
	return s.URL + s.mount + "/" + client + "/v1/auth/session"
}

// SessionCalls reports how many GET or HEAD requests the session endpoints
// ({mount}/app/v1/auth/session and {mount}/browser/v1/auth/session) have
// received since creation or the last ResetCounters, whatever the outcome
// (faults included).
func (s *Server) SessionCalls() int64 { return s.sessionCalls.Load() }

// LastSessionHeader returns the value of the named header (any case) on the
// last request that SessionCalls counted, or "" if there was none since
// creation or the last ResetCounters: to see what a client sends along with
// its credential, such as the W3C traceparent header.
func (s *Server) LastSessionHeader(name string) string {
	if h := s.lastHeader.Load(); h != nil {
		return h.Get(name)
	}
	return ""
}

// ResetCounters sets SessionCalls back to zero, forgets the last session
// request's headers, and sets MaxInFlight to the lookups in flight now.
func (s *Server) ResetCounters() {
	s.sessionCalls.Store(0)
	s.lastHeader.Store(nil)
	s.inFlight.peak.Store(s.inFlight.now.Load())
}
