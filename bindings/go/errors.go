package starkv

import (
	"runtime"

	"github.com/starkv/starkv/bindings/go/internal/raw"
)

// Status is a starkv status code.
type Status int32

// The status codes of include/starkv/starkv.h.
const (
	StatusOK                 Status = 0
	StatusInvalidArgument    Status = 1
	StatusNullHandle         Status = 2
	StatusSizeMismatch       Status = 3
	StatusDType              Status = 4
	StatusOutOfMemory        Status = 5
	StatusPoolFull           Status = 6
	StatusUnknownSequence    Status = 7
	StatusPosition           Status = 8
	StatusCorruptData        Status = 9
	StatusFormat             Status = 10
	StatusVersion            Status = 11
	StatusProfileMismatch    Status = 12
	StatusIO                 Status = 13
	StatusBufferTooSmall     Status = 14
	StatusBackendUnavailable Status = 15
	StatusUnsupported        Status = 16
	StatusNumerical          Status = 17
	StatusCancelled          Status = 18
	StatusInvalidState       Status = 19
	StatusBackend            Status = 20
	StatusInternal           Status = 21
)

// String is the library's short description ("pool full").
func (s Status) String() string {
	return raw.Starkv_status_string(raw.Enum_SS_starkv_status(s))
}

// Error is a failed starkv call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	return "starkv: " + e.Message + " [" + e.Status.String() + "]"
}

// Is makes errors.Is(err, ErrPoolFull) and the other family sentinels match.
func (e *Error) Is(target error) bool {
	f, ok := target.(*family)
	if !ok {
		return false
	}
	for _, s := range f.statuses {
		if s == e.Status {
			return true
		}
	}
	return false
}

// family is a sentinel matching a group of statuses.
type family struct {
	name     string
	statuses []Status
}

func (f *family) Error() string { return "starkv: " + f.name }

// Families of failures, for errors.Is.
var (
	// ErrInvalidArgument: an argument out of range (layer, sequence, position, profile), a wrong
	// size included.
	ErrInvalidArgument error = &family{"invalid argument", []Status{StatusInvalidArgument,
		StatusUnknownSequence, StatusPosition, StatusProfileMismatch, StatusSizeMismatch,
		StatusBufferTooSmall}}
	// ErrSize: a buffer of the wrong size for the call.
	ErrSize error = &family{"size mismatch", []Status{StatusSizeMismatch, StatusBufferTooSmall}}
	// ErrDType: a buffer whose element type the call does not take.
	ErrDType error = &family{"wrong dtype", []Status{StatusDType}}
	// ErrState: a call out of order, or cancelled; closed handles included.
	ErrState error = &family{"invalid state", []Status{StatusInvalidState, StatusCancelled,
		StatusNullHandle}}
	// ErrClosed: the handle was closed.
	ErrClosed error = &family{"closed handle", []Status{StatusNullHandle}}
	// ErrOutOfMemory: memory ran out; a full pool included.
	ErrOutOfMemory error = &family{"out of memory", []Status{StatusOutOfMemory, StatusPoolFull}}
	// ErrPoolFull: no free pages for the tokens; nothing was written.
	ErrPoolFull error = &family{"pool full", []Status{StatusPoolFull}}
	// ErrData: not a valid starkv profile or snapshot; corrupt data included.
	ErrData error = &family{"bad data", []Status{StatusCorruptData, StatusFormat, StatusVersion}}
	// ErrCorruptData: a file or buffer that failed its checksum or structure checks.
	ErrCorruptData error = &family{"corrupt data", []Status{StatusCorruptData}}
	// ErrIO: a file could not be opened, read or written.
	ErrIO error = &family{"i/o error", []Status{StatusIO}}
	// ErrBackend: the backend is unavailable, does not implement the request, or failed.
	ErrBackend error = &family{"backend error", []Status{StatusBackendUnavailable,
		StatusUnsupported, StatusBackend}}
	// ErrNumerical: a decomposition did not converge, or NaN/Inf in the input.
	ErrNumerical error = &family{"numerical error", []Status{StatusNumerical}}
	// ErrInternal: a bug in starkv; please report it with the message.
	ErrInternal error = &family{"internal error", []Status{StatusInternal}}
)

// call runs raw binding calls and turns a failure they recorded into an *Error: the one place
// where statuses become Go errors. The binding layer records failures per OS thread, so the
// goroutine stays on its thread from the call to the check.
func call(f func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
	if status := raw.Skv_error_status(); status != 0 {
		return &Error{Status: Status(status), Message: raw.Skv_error_message()}
	}
	return nil
}

// fail is an error the Go layer detects itself, with the same type as the library's.
func fail(status Status, message string) error {
	return &Error{Status: status, Message: message}
}
