package allreduce

import (
	"fmt"
	"time"
)

// TimeoutsFor splits a round that must end within round into the part and
// reduce timeouts of a RoundConfig, so that a member lost at any time
// before the agreement still leaves the others the time to re-reduce its
// span and end with the exact mean of the rest: part = round/8, reduce =
// round/2. The budget, in eighths of the round:
//
//   - 1: an owner that has had no part from a member for part leaves it
//     out of its report and declares it lost (round_reduce.go), so a
//     member that never started, or died while sending, has its span
//     moved at once;
//   - 5: an owner whose report never came (an aux, which sends no parts,
//     or one that died after sending its own) is declared lost at reduce +
//     part (round_lost.go);
//   - 6: its replacement reports as soon as the others' values of the span
//     are in again, at the latest part after it took over;
//   - 7: a replacement lost in turn is declared lost 2 parts after it took
//     over, and the next one reports by the end.
//
// That leaves at least a quarter of the round after one loss to send the
// span again and gather it. A contributor that is slow but still sending
// has half the round: reduce is when owners stop waiting for it, and the
// other half is for gathering what it did send.
func TimeoutsFor(round time.Duration) (part, reduce, total time.Duration) {
	return round / 8, round / 2, round
}

// reduceBy is when, counted from Start, an owner reports whatever it has.
func (c *RoundConfig) reduceBy() time.Duration {
	if c.ReduceTimeout == 0 {
		return c.RoundTimeout / 2
	}
	return c.ReduceTimeout
}

// Slack is how long past its expected time a report or a part may be late
// before its owner is believed lost: PartTimeout, or a quarter of what the
// round leaves after the reduce deadline. A transport takes it as its
// measure of a stalled member (node/allreduce/p2p abandons a writer that
// has written nothing for it once the round is done).
func (c *RoundConfig) Slack() time.Duration {
	if c.PartTimeout > 0 {
		return c.PartTimeout
	}
	return max((c.RoundTimeout-c.reduceBy())/4, time.Millisecond)
}

// validateTimeouts checks that the timeouts leave room to replace a lost
// owner: it is declared lost a slack after the reduce deadline, and its
// replacement reports at the latest a slack after that, both before the
// round's end.
func (c *RoundConfig) validateTimeouts() error {
	if c.RoundTimeout <= 0 || c.PartTimeout < 0 || c.ReduceTimeout < 0 || c.ReduceTimeout > c.RoundTimeout {
		return fmt.Errorf("timeouts part %v, reduce %v, round %v: want round > 0, 0 <= reduce <= round, part >= 0",
			c.PartTimeout, c.ReduceTimeout, c.RoundTimeout)
	}
	if c.reduceBy()+2*c.Slack() > c.RoundTimeout {
		return fmt.Errorf("timeouts part %v, reduce %v, round %v leave no time to replace a lost owner: want reduce + 2×part <= round (TimeoutsFor splits a round)",
			c.PartTimeout, c.ReduceTimeout, c.RoundTimeout)
	}
	return nil
}
