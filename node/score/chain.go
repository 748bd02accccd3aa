package score

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// ChainWeights is a weight vector in the form a Bittensor validator submits
// with set_weights (or commits with commit-reveal): uids and u16 weights,
// max-upscaled so the largest is 65535, zeros left out, and a version key,
// as bittensor's convert_weights_and_uids_for_emit makes them. A chain
// adapter only has to sign and send it; the chain's own limits (min allowed
// weights, max weight limit) are the adapter's to apply, as Subnet 38's
// validators do with process_weights_for_netuid before converting.
//
// Uids come from Config.UIDs (the metagraph's hotkey → uid, as the adapter
// will know it); a miner with a weight but no uid there is left out and
// counted in Unmapped. With no map, a miner's uid is its index in the
// epoch's sorted Weights.Miners: stable only while the set of miners is, so
// Miners names the miner of each uid for a reader.
type ChainWeights struct {
	UIDs       []uint16 `json:"uids"`
	Weights    []uint16 `json:"weights"`
	Miners     []string `json:"miners"`
	VersionKey uint64   `json:"version_key"`
	Unmapped   int      `json:"unmapped,omitempty"`
}

// U16Max is the largest chain weight.
const U16Max = math.MaxUint16

// U16Weights max-upscales ws to u16: w/max(ws)·65535 rounded half to even
// (Python's round, which bittensor uses), so the largest is 65535 and
// ratios hold to within half a unit. All zeros (or none) give all zeros.
// A negative, NaN or infinite weight is an error.
func U16Weights(ws []float64) ([]uint16, error) {
	top := 0.0
	for i, w := range ws {
		if !finite(w) || w < 0 {
			return nil, fmt.Errorf("score: weight %d is %v, want finite and >= 0", i, w)
		}
		top = max(top, w)
	}
	out := make([]uint16, len(ws))
	if top == 0 {
		return out, nil
	}
	for i, w := range ws {
		out[i] = uint16(math.RoundToEven(w / top * U16Max))
	}
	return out, nil
}

// chainWeights converts the epoch's weights for the chain.
func chainWeights(miners []MinerWeight, uids map[string]uint16, v Version) ChainWeights {
	type entry struct {
		uid   uint16
		miner string
		w     float64
	}
	cw := ChainWeights{UIDs: []uint16{}, Weights: []uint16{}, Miners: []string{}, VersionKey: v.Key()}
	var es []entry
	for i, m := range miners {
		uid, ok := uint16(i), i <= U16Max
		if uids != nil {
			uid, ok = uids[m.Miner]
		}
		switch {
		case ok:
			es = append(es, entry{uid, m.Miner, m.Weight})
		case m.Weight > 0:
			cw.Unmapped++
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.uid, b.uid) })
	ws := make([]float64, len(es))
	for i, e := range es {
		ws[i] = e.w
	}
	u16, err := U16Weights(ws)
	if err != nil {
		return cw // scores are finite and non-negative by construction
	}
	for i, e := range es {
		if u16[i] != 0 {
			cw.UIDs = append(cw.UIDs, e.uid)
			cw.Weights = append(cw.Weights, u16[i])
			cw.Miners = append(cw.Miners, e.miner)
		}
	}
	return cw
}
