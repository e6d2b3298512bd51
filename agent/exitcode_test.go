package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/rs/zerolog"
)

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
	}{
		{nil, contract.ExitOK},
		{errors.New("boom"), contract.ExitError},
		{fmt.Errorf("x: %w", freezer.ErrTargetNotFound), contract.ExitNoTarget},
		{freezer.ErrAmbiguousContainer, contract.ExitUsage},
		{freezer.ErrUnsafeTarget, contract.ExitUnsafeTarget},
		{freezer.ErrNotPrivileged, contract.ExitNotPrivileged},
		{freezer.ErrNoFreezer, contract.ExitNoFreezer},
		{freezer.ErrReadOnly, contract.ExitReadOnly},
		{freezer.ErrAlreadyFrozen, contract.ExitAlreadyFrozen},
		{freezer.ErrFreezeFailed, contract.ExitFreezeFailed},
		{freezer.ErrThawFailed, contract.ExitThawFailed},
		{ErrDropFailed, contract.ExitDropFailed},
		{freezer.ErrTargetGone, contract.ExitTargetGone},
		{freezer.ErrThawedByOther, contract.ExitThawedByOther},
		{fmt.Errorf("%w: %w", ErrSupervisorGone, freezer.ErrFreezeFailed), contract.ExitSupervisorGone},
		// A thaw that failed decides: the target may still be frozen.
		{fmt.Errorf("%w; and then: %w", ErrDropFailed, freezer.ErrThawFailed), contract.ExitThawFailed},
		{fmt.Errorf("%w: %w", ErrSupervisorGone, freezer.ErrThawFailed), contract.ExitThawFailed},
		{fmt.Errorf("%w; the rollback failed too: %w", freezer.ErrFreezeFailed, freezer.ErrThawFailed), contract.ExitThawFailed},
	} {
		if got := ExitCode(tt.err); got != tt.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
}

// TestExitCodesKnown: every code ExitCode returns is in the contract's
// list.
func TestExitCodesKnown(t *testing.T) {
	known := map[int]bool{}
	for _, c := range contract.ExitCodes {
		known[c.Code] = true
	}
	for _, m := range exitCodes {
		if !known[m.code] {
			t.Errorf("%v maps to %d, which contract.ExitCodes does not list", m.err, m.code)
		}
	}
}
