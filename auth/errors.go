package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Error codes in response bodies. They follow the registry's errcode format,
// which Docker and other clients parse: {"errors":[{"code","message"}]}.
const (
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeTooManyRequests = "TOOMANYREQUESTS"
	CodeBadRequest      = "BAD_REQUEST"
	CodeTooLarge        = "TOO_LARGE"
	CodeUnsupported     = "UNSUPPORTED"
	CodeNotFound        = "NOT_FOUND"
	CodeUnavailable     = "UNAVAILABLE"
	CodeInternal        = "INTERNAL_ERROR"
)

// Error is a failed token request: what the client is told (Status, Code,
// Message) and, separately, the precise reason that is logged (Err).
type Error struct {
	Status  int
	Code    string
	Message string
	// Challenge, when set, is sent as the WWW-Authenticate header.
	Challenge string
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int
	// Err is the internal reason, logged and never sent.
	Err error
}

// Error describes the failure for logs.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the internal reason.
func (e *Error) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError sends e as an errcode JSON body.
func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message}}})
}
