package matchmaking

// Announced returns a copy of the announcements this Matchmaker collected,
// in arrival order: its view of who was ready for the epoch, from which a
// caller can tell how many groups the swarm split into (Partition).
func (m *Matchmaker) Announced() []Ready {
	return append([]Ready(nil), m.ready...)
}
