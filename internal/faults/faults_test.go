package faults

import (
	"errors"
	"sync"
	"syscall"
	"testing"
)

func arm(t *testing.T, value string) {
	t.Helper()
	t.Setenv(Env, value)
	once = sync.Once{}
	t.Cleanup(func() { once = sync.Once{} })
}

func TestPointUnarmed(t *testing.T) {
	arm(t, "")
	if err := Point("freeze:marked"); err != nil {
		t.Fatalf("Point with %s unset = %v, want nil", Env, err)
	}
}

func TestPointFail(t *testing.T) {
	arm(t, "thaw:written:fail")
	if err := Point("freeze:marked"); err != nil {
		t.Errorf("Point of another step = %v, want nil", err)
	}
	if err := Point("thaw:written"); !errors.Is(err, ErrInjected) {
		t.Errorf("Point of the armed step = %v, want ErrInjected", err)
	}
}

func TestPointEOPNOTSUPP(t *testing.T) {
	arm(t, "drop:destroy:eopnotsupp")
	err := Point("drop:destroy")
	if !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("Point of the armed step = %v, want ErrInjected wrapping EOPNOTSUPP", err)
	}
}
