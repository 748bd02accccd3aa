package matchmaking

// Announced is how many distinct peers this Matchmaker collected
// announcements from: its view of who was ready for the epoch, from which
// a caller can tell how many groups the swarm split into (Groups).
func (m *Matchmaker) Announced() int { return len(m.ready) }

// Collecting reports whether this Matchmaker still takes announcements:
// after it closed, a Ready (a gossip echo, or one sent too late) can only
// be refused, and a caller may drop it without building that refusal.
func (m *Matchmaker) Collecting() bool { return !m.closed && !m.done }
