// Package faultproxy is a loopback TCP proxy for tests that puts faults
// between a client and its backend (an LDAP directory, a MongoDB server):
// a delay on every chunk, a stall, dropped connections, and garbage
// answers. The mode can be switched at any time and applies at once to the
// connections already open, as a network or an overloaded server would.
//
//	p := faultproxy.Start(t, srv.Addr) // point the client at p.Addr()
//	p.Delay(2 * time.Second)           // every chunk held 2 s, both ways
//	p.Stall()                          // nothing forwarded until the next switch
//	p.Drop()                           // open connections closed, new ones too
//	p.Garbage(nil)                     // every request answered with random bytes
//	p.Pass()                           // back to normal
//
// Only tests import it.
package faultproxy

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Mode is what the proxy does with the data it reads.
type Mode int

// The modes.
const (
	// Pass forwards everything at once.
	Pass Mode = iota
	// Delay holds every chunk, both ways, for the delay before forwarding
	// it.
	Delay
	// Stall forwards nothing: data waits until the mode changes, as with a
	// hung server whose kernel still accepts connections.
	Stall
	// Drop closes the open connections and every new one as it is
	// accepted.
	Drop
	// Garbage answers every chunk the client sends with what the garbage
	// function returns, and forwards nothing; new connections do not reach
	// the backend at all.
	Garbage
)

var modeNames = [...]string{"pass", "delay", "stall", "drop", "garbage"}

func (m Mode) String() string { return modeNames[m] }

// Proxy forwards the connections accepted on a loopback port to a backend.
type Proxy struct {
	backend string
	ln      net.Listener

	mu       sync.Mutex
	mode     Mode
	delay    time.Duration
	garbage  func(req []byte) []byte
	changed  chan struct{} // closed and replaced at every switch
	pipes    map[*pipe]struct{}
	accepted int
	closed   bool

	wg sync.WaitGroup // the accept loop and every pump
}

// pipe is one proxied connection: client is the accepted one, server the
// connection to the backend (nil when it was accepted in Garbage mode).
type pipe struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (c *pipe) close() {
	c.once.Do(func() {
		close(c.done)
		abort(c.client)
		if c.server != nil {
			abort(c.server)
		}
	})
}

// abort closes conn with a reset, as a crashed peer or a firewall would.
func abort(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Start listens on 127.0.0.1 and forwards to backend (host:port) in Pass
// mode. The proxy closes, with every connection, when the test ends.
func Start(t testing.TB, backend string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	p := &Proxy{backend: backend, ln: ln, changed: make(chan struct{}), pipes: map[*pipe]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns "127.0.0.1:PORT", the address clients use.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pass forwards everything again; data held by Delay or Stall goes on.
func (p *Proxy) Pass() { p.set(Pass, 0, nil) }

// Delay holds every chunk, both ways, for d.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d, nil) }

// Stall stops forwarding until the next switch.
func (p *Proxy) Stall() { p.set(Stall, 0, nil) }

// Drop closes every open connection, and every new one once accepted.
func (p *Proxy) Drop() { p.set(Drop, 0, nil) }

// Garbage answers every chunk a client sends with answer(chunk), or with
// 1 to 512 random bytes when answer is nil, and forwards nothing.
func (p *Proxy) Garbage(answer func(req []byte) []byte) {
	if answer == nil {
		answer = Random(rand.Uint64())
	}
	p.set(Garbage, 0, answer)
}

// Random returns a garbage function answering 1 to 512 bytes from a
// generator seeded with seed.
func Random(seed uint64) func([]byte) []byte {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func([]byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		b := make([]byte, 1+r.IntN(512))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
}

// Fixed returns a garbage function that always answers b, such as a
// greeting of another protocol.
func Fixed(b []byte) func([]byte) []byte { return func([]byte) []byte { return b } }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Open returns the number of connections open through the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pipes)
}

// Accepted returns the number of connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	pipes := p.pipes
	p.pipes = map[*pipe]struct{}{}
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range pipes {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) set(m Mode, d time.Duration, garbage func([]byte) []byte) {
	p.mu.Lock()
	p.mode, p.delay, p.garbage = m, d, garbage
	close(p.changed)
	p.changed = make(chan struct{})
	var drop []*pipe
	for c := range p.pipes {
		// Drop closes everything; any other switch closes the connections
		// born in Garbage mode, which have no backend to forward to.
		if m == Drop || (c.server == nil && m != Garbage) {
			drop = append(drop, c)
		}
	}
	p.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
}

// state returns the mode and what goes with it, and a channel closed at the
// next switch.
func (p *Proxy) state() (Mode, time.Duration, func([]byte) []byte, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.garbage, p.changed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		p.accepted++
		mode := p.mode
		p.mu.Unlock()
		c := &pipe{client: client, done: make(chan struct{})}
		switch mode {
		case Drop:
			abort(client)
			continue
		case Garbage:
		default:
			// A backend that is down: the client sees its connection reset.
			if c.server, err = net.DialTimeout("tcp", p.backend, 5*time.Second); err != nil {
				abort(client)
				continue
			}
		}
		if !p.add(c) {
			c.close()
			return
		}
		p.wg.Add(1)
		go p.pump(c, true)
		if c.server != nil {
			p.wg.Add(1)
			go p.pump(c, false)
		}
	}
}

func (p *Proxy) add(c *pipe) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.pipes[c] = struct{}{}
	return true
}

// pump copies one direction of c: up is client to server.
func (p *Proxy) pump(c *pipe, up bool) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.pipes, c)
		p.mu.Unlock()
	}()
	src := c.client
	if !up {
		src = c.server
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.deliver(c, buf[:n], up) {
			return
		}
		if err != nil {
			return
		}
	}
}

// deliver does with one chunk what the mode says; false closes c.
func (p *Proxy) deliver(c *pipe, chunk []byte, up bool) bool {
	for {
		mode, delay, garbage, changed := p.state()
		switch mode {
		case Pass:
			return c.forward(chunk, up)
		case Delay:
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
				return c.forward(chunk, up)
			case <-changed: // held data follows the new mode
				timer.Stop()
				continue
			case <-c.done:
				timer.Stop()
				return false
			}
		case Stall:
			select {
			case <-changed:
				continue
			case <-c.done:
				return false
			}
		case Drop:
			return false
		case Garbage:
			if up {
				_, err := c.client.Write(garbage(chunk))
				return err == nil
			}
			return true // a late answer of the backend: swallowed
		}
	}
}

func (c *pipe) forward(chunk []byte, up bool) bool {
	dst := c.client
	if up {
		dst = c.server
	}
	if dst == nil {
		return false
	}
	_, err := dst.Write(chunk)
	return err == nil
}
