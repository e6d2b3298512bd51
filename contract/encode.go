package contract

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/cgfreeze/cgfreeze/internal/jsonenc"
)

// AppendJSON appends e as one JSON object to b, byte for byte what
// json.Marshal(e) gives (the fields in their order, omitempty as the tags
// say, numbers and strings escaped as encoding/json does, HTML escaping
// on), and returns the extended slice. A float that is NaN or infinite
// has no JSON form: then b comes back unchanged with json.Marshal's own
// error (an *json.UnsupportedValueError).
//
// It exists for speed: json.Marshal builds its encoder for a type by
// reflection the first time it meets it, 0.13-0.17 ms of a fresh process,
// which cgfreeze would pay between the freeze's confirmation and its
// "frozen" line. Event does not implement json.Marshaler with it, on
// purpose: encoding/json would then call AppendJSON and re-scan its output
// (compact and HTML-escape it again), so callers of json.Marshal would pay
// more, not less, and the tests could no longer hold AppendJSON against
// encoding/json's own reflection encoder, which is the definition of the
// format. Callers that want the speed call AppendJSON.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	for _, f := range [...]float64{e.ElapsedMS, e.HeldMS, e.LatencyMS} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			_, err := json.Marshal(e)
			return b, err
		}
	}
	b = append(b, `{"event":`...)
	b = jsonenc.AppendString(b, e.Event)
	o := object{b}
	o.str(`"time":`, e.Time)
	o.int(`"schema":`, e.Schema)
	o.int(`"pid":`, e.PID)
	o.str(`"cgroup":`, e.Cgroup)
	o.int(`"version":`, e.Version)
	o.str(`"strategy":`, e.Strategy)
	o.intPtr(`"processes":`, e.Processes)
	o.float(`"elapsed_ms":`, e.ElapsedMS)
	o.str(`"reason":`, e.Reason)
	o.str(`"signal":`, e.Signal)
	o.float(`"held_ms":`, e.HeldMS)
	o.str(`"state":`, e.State)
	o.str(`"frozen_by":`, e.FrozenBy)
	o.int(`"holder":`, e.Holder)
	o.str(`"namespace":`, e.Namespace)
	if e.Held != nil {
		o.b = append(o.b, `,"held":`...)
		o.b = strconv.AppendBool(o.b, *e.Held)
	}
	o.str(`"what":`, e.What)
	o.float(`"latency_ms":`, e.LatencyMS)
	o.intPtr(`"count":`, e.Count)
	if e.Connections != nil {
		// omitempty tests the pointer only: a pointer to an empty
		// slice gives [], one to a nil slice null.
		o.b = append(o.b, `,"connections":`...)
		o.b = appendConnections(o.b, *e.Connections)
	}
	if len(e.Shared) > 0 {
		o.b = append(o.b, `,"shared":`...)
		o.b = appendConnections(o.b, e.Shared)
	}
	o.int(`"filtered":`, e.Filtered)
	o.int(`"hidden":`, e.Hidden)
	o.str(`"warning":`, e.Warning)
	o.str(`"error":`, e.Error)
	o.intPtr(`"exit_code":`, e.ExitCode)
	o.str(`"container_id":`, e.ContainerID)
	return append(o.b, '}'), nil
}

// object appends the omitempty members of a JSON object after its first,
// each with its leading comma; key is the quoted key and its colon.
type object struct{ b []byte }

func (o *object) str(key, s string) {
	if s != "" {
		o.b = append(append(o.b, ','), key...)
		o.b = jsonenc.AppendString(o.b, s)
	}
}

func (o *object) int(key string, n int) {
	if n != 0 {
		o.b = append(append(o.b, ','), key...)
		o.b = strconv.AppendInt(o.b, int64(n), 10)
	}
}

func (o *object) intPtr(key string, n *int) {
	if n != nil {
		o.b = append(append(o.b, ','), key...)
		o.b = strconv.AppendInt(o.b, int64(*n), 10)
	}
}

// float appends a finite f (AppendJSON checked) unless it is zero.
func (o *object) float(key string, f float64) {
	if f != 0 {
		o.b = append(append(o.b, ','), key...)
		o.b = jsonenc.AppendFloat(o.b, f)
	}
}

// appendConnections appends cs as a JSON array (null when nil, as
// encoding/json gives a nil slice).
func appendConnections(b []byte, cs []Connection) []byte {
	if cs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"local":`...)
		b = jsonenc.AppendString(b, c.Local)
		b = append(b, `,"remote":`...)
		b = jsonenc.AppendString(b, c.Remote)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(c.PID), 10)
		b = append(b, `,"direction":`...)
		b = jsonenc.AppendString(b, c.Direction)
		b = append(b, '}')
	}
	return append(b, ']')
}
