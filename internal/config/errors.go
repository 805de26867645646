package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// ReasonInvalidConfiguration is the reason of the Event the puller records
// on its ConfigMap when it refuses the configuration, offline or because the
// API server refused the DaemonSet. The operator reads it back.
const ReasonInvalidConfiguration = "InvalidConfiguration"

// ReasonPrivilegeNotGranted is the reason of the Event the puller records on
// its ConfigMap when the configuration asks for a privilege (agent mode,
// node writes, a runtime socket) that its namespace was not granted; the
// operator reads it back too.
const ReasonPrivilegeNotGranted = "PrivilegeNotGranted"

// AnnotationFingerprint on that Event is the Fingerprint of the refused
// configuration, so that a reader can tell whether the refusal is about the
// configuration in force.
const AnnotationFingerprint = "kip.dev/configuration-fingerprint"

// Fingerprint identifies configuration data: equal data, equal fingerprint.
func Fingerprint(data map[string]string) string {
	raw, _ := json.Marshal(data) // map keys come out sorted
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// maxShownValue bounds how much of an offending value an error repeats, so a
// long JSON document does not flood a log line or an Event.
const maxShownValue = 120

// Problem is one finding about one key: the key, the offending value and
// what is expected instead. Validation errors and warnings share the shape.
type Problem struct {
	Key      string
	Value    string
	Expected string
}

func (p Problem) String() string {
	v := p.Value
	if len(v) > maxShownValue {
		v = v[:maxShownValue] + "..."
	}
	return fmt.Sprintf("%s: value %q: %s", p.Key, v, p.Expected)
}

// Error is every validation problem of one configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	noun := "errors"
	if len(lines) == 1 {
		noun = "error"
	}
	return fmt.Sprintf("invalid configuration, %d %s: %s", len(lines), noun, strings.Join(lines, "; "))
}

// Keys returns the keys that have at least one problem, in order of first appearance.
func (e *Error) Keys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, p := range e.Problems {
		if !seen[p.Key] {
			seen[p.Key] = true
			keys = append(keys, p.Key)
		}
	}
	return keys
}

// problems collects findings while a configuration is parsed.
type problems []Problem

func (ps *problems) add(key, value, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Value: value, Expected: fmt.Sprintf(format, args...)})
}
