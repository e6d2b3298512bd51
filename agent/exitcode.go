package agent

import (
	"errors"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
)

// exitCodes maps errors to exit codes, most specific first: a thaw that
// failed (the target may still be frozen) decides over what came before it.
var exitCodes = []struct {
	err  error
	code int
}{
	{freezer.ErrThawFailed, contract.ExitThawFailed},
	{ErrSupervisorGone, contract.ExitSupervisorGone},
	{freezer.ErrTargetNotFound, contract.ExitNoTarget},
	{freezer.ErrAmbiguousContainer, contract.ExitUsage},
	{freezer.ErrUnsafeTarget, contract.ExitUnsafeTarget},
	{freezer.ErrReadOnly, contract.ExitReadOnly},
	{freezer.ErrNotPrivileged, contract.ExitNotPrivileged},
	{freezer.ErrNoFreezer, contract.ExitNoFreezer},
	{freezer.ErrAlreadyFrozen, contract.ExitAlreadyFrozen},
	{freezer.ErrFreezeFailed, contract.ExitFreezeFailed},
	{ErrDropFailed, contract.ExitDropFailed},
	{freezer.ErrTargetGone, contract.ExitTargetGone},
	{freezer.ErrThawedByOther, contract.ExitThawedByOther},
}

// ExitCode returns the exit code for an error of the freezer or of this
// package: contract.ExitError for one without a code of its own, ExitOK for
// nil.
func ExitCode(err error) int {
	if err == nil {
		return contract.ExitOK
	}
	for _, m := range exitCodes {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return contract.ExitError
}
