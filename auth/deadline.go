package auth

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is parent bounded by deadline, like context.WithDeadline,
// except that the timer and the registration with parent are only made
// when something asks: Done, Err or Deadline (a backend that waits on the
// directory, a bcrypt check, a limiter slot). Anonymous and cached token
// requests never ask, and do not pay for a timer they would cancel.
//
// Call stop when the request is over; the context is then canceled.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	once    sync.Once
	started atomic.Bool
	ctx     context.Context // set by once
	cancel  context.CancelFunc
}

func withLazyDeadline(parent context.Context, deadline time.Time) *lazyDeadline {
	return &lazyDeadline{parent: parent, deadline: deadline}
}

// start makes the real context on first use.
func (c *lazyDeadline) start() context.Context {
	c.once.Do(func() {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		c.started.Store(true)
	})
	return c.ctx
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.start().Deadline() }
func (c *lazyDeadline) Done() <-chan struct{}       { return c.start().Done() }
func (c *lazyDeadline) Err() error                  { return c.start().Err() }

// Value looks in the real context once it exists (the context package
// finds the cancelable context to attach children to that way), in parent
// before.
func (c *lazyDeadline) Value(key any) any {
	if c.started.Load() {
		return c.ctx.Value(key)
	}
	return c.parent.Value(key)
}

func (c *lazyDeadline) String() string { return "auth.lazyDeadline" }

// canceledContext is what a stopped lazyDeadline that never started
// becomes.
var canceledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// stop cancels the context, or, when it never started, makes it a
// canceled one without starting a timer.
func (c *lazyDeadline) stop() {
	c.once.Do(func() {
		c.ctx, c.cancel = canceledContext, func() {}
		c.started.Store(true)
	})
	c.cancel()
}
