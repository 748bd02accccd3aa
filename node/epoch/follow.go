package epoch

import "time"

// Outdated reports whether the rules (doc.go, "Rules") would have this
// peer load another state at now: it is behind, a successor of its epoch
// is held by two or more, or it is off the majority's lineage. An aux
// validator waiting in Training to announce asks it to know when to
// answer Trained, which then asks for the load.
func (m *Machine) Outdated(now time.Duration) bool {
	_, ok := m.target(now)
	return ok
}
