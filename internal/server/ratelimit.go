package server

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// Defaults of FailureLimit.
const (
	DefaultMaxFailures    = 10
	DefaultFailureWindow  = time.Minute
	DefaultMaxClients     = 10000
	ipv6ClientPrefixBytes = 8 // a client is one IPv6 /64: one host usually has all of it
)

// FailureLimit bounds failed authentications per client (remote IP): after
// MaxFailures rejected tokens within Window of the first, the client gets
// 429 with Retry-After until that window ends, without a TokenReview.
// Accepted tokens are not counted. At most MaxClients clients are
// remembered; when more fail at once, the one whose window started first is
// forgotten. Zero fields take the defaults.
type FailureLimit struct {
	MaxFailures int
	Window      time.Duration
	MaxClients  int
}

func (l FailureLimit) withDefaults() FailureLimit {
	if l.MaxFailures <= 0 {
		l.MaxFailures = DefaultMaxFailures
	}
	if l.Window <= 0 {
		l.Window = DefaultFailureWindow
	}
	if l.MaxClients <= 0 {
		l.MaxClients = DefaultMaxClients
	}
	return l
}

// failureLimiter counts failures per client in fixed windows that start at
// a client's first failure. Clients are kept in a list ordered by window
// start, so expired ones are dropped from its front and memory stays
// bounded by MaxClients.
type failureLimiter struct {
	limit FailureLimit

	mu      sync.Mutex
	clients map[string]*list.Element // of *clientFailures
	byStart *list.List               // oldest window first
}

type clientFailures struct {
	client string
	start  time.Time
	count  int
}

func newFailureLimiter(limit FailureLimit) *failureLimiter {
	return &failureLimiter{limit: limit.withDefaults(), clients: map[string]*list.Element{}, byStart: list.New()}
}

// retryAfter is how long client must wait before its next attempt, or 0.
func (l *failureLimiter) retryAfter(client string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e, ok := l.clients[client]
	if !ok {
		return 0
	}
	c := e.Value.(*clientFailures)
	if c.count < l.limit.MaxFailures {
		return 0
	}
	return c.start.Add(l.limit.Window).Sub(now)
}

// failed records a rejected token of client and reports whether this
// failure used up its allowance.
func (l *failureLimiter) failed(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= l.limit.MaxClients {
			l.remove(l.byStart.Front())
		}
		e = l.byStart.PushBack(&clientFailures{client: client, start: now})
		l.clients[client] = e
	}
	c := e.Value.(*clientFailures)
	c.count++
	return c.count == l.limit.MaxFailures
}

// expire forgets clients whose window has ended.
func (l *failureLimiter) expire(now time.Time) {
	for e := l.byStart.Front(); e != nil; e = l.byStart.Front() {
		if now.Before(e.Value.(*clientFailures).start.Add(l.limit.Window)) {
			return
		}
		l.remove(e)
	}
}

func (l *failureLimiter) remove(e *list.Element) {
	if e == nil {
		return
	}
	delete(l.clients, e.Value.(*clientFailures).client)
	l.byStart.Remove(e)
}

// size is how many clients are remembered.
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientKey is the client a request's failures count against: its remote
// IP, or its /64 for IPv6. Forwarded-for headers are not trusted: behind a
// proxy every client is the proxy.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(ipv6ClientPrefixBytes*8, 128)), Mask: net.CIDRMask(ipv6ClientPrefixBytes*8, 128)}).String()
}
