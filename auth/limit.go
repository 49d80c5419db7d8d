package auth

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// checkLimiter bounds the password checks (bcrypt comparisons, directory
// binds) running at once. A request waits at most wait for a slot; then it
// is answered 503 with Retry-After, so a flood of logins cannot starve
// cached and anonymous requests, which never take a slot.
type checkLimiter struct {
	slots chan struct{}
	wait  time.Duration
}

func newCheckLimiter(n int, wait time.Duration) *checkLimiter {
	return &checkLimiter{slots: make(chan struct{}, max(n, 1)), wait: wait}
}

var errBusy = errors.New("too many password checks in progress")

// acquire takes a slot; release it with the returned function.
func (l *checkLimiter) acquire(ctx context.Context) (func(), error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *checkLimiter) release() { <-l.slots }

// busy is the answer when no slot came free in time.
func (l *checkLimiter) busy(reason error) *Error {
	return &Error{
		Status:     http.StatusServiceUnavailable,
		Code:       CodeUnavailable,
		Message:    "too many logins in progress, retry shortly",
		RetryAfter: max(1, int(l.wait/time.Second)),
		Err:        reason,
	}
}
