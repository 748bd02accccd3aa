// Package verify checks that a miner's update of a diloco epoch is work it
// did, on the data assigned to it, from the epoch's parameters: a Verifier
// audits the updates of an epoch's sampled miners together and gives each a
// node/score Verdict (Pass with a quality, Cheat with a reason, or
// Inconclusive) and the Evidence behind it, for a small fraction of the
// compute the miners spent.
//
// # What the validator supplies
//
// Per epoch (Epoch): its number; θ, the parameters the epoch started from;
// the previous epoch's averaged pseudo-gradient (the one that led to θ);
// the learning rate of each inner step (the run's schedule), AdamW's
// betas and weight decay, the micro-batch size and the accumulation; and
// the reference data, micro-batches of windows no miner was assigned (a
// lane of an id only the validator knows, drawn afresh every epoch). Per
// audited miner (Update): its id; the vector it put into the average, as
// the owners of its spans decoded it, fetched from the miner and checked
// against the commitment to its contribution that the miner made before
// the round, in the group's view (so a miner that shows the validator one
// vector and the owners another, a split view, fails that check, not
// these, and what this package judges is what was averaged); the sample
// count it claimed, which is its weight in that same round; and its micro-batches, recomputed from its
// public lane (node/data). Audit is called once per epoch with every
// audited miner; it needs at least three for the comparisons between them.
//
// # Checks, cheapest first
//
// An update caught by one check skips the later ones, so most cheats cost
// no forward pass.
//
//  1. Vector checks, one pass over the update: the model's length and
//     finite values; a claim of 1 to inner_steps·accum·micro samples;
//     not zero; no coordinate further from θ than AdamW can move one in the
//     claimed steps (bound.go: |Δ_j| ≤ Σ lr_t·(B + λ_j|θ_j|), B = 1.165 for
//     β = (0.9, 0.95), whatever moments the miner carried in); not the
//     previous average (cosine above CopyCos).
//  2. Sketch checks: a count sketch of each update (SketchDim numbers,
//     keyed by the validator's seed) is compared with those of the updates
//     and averages of the last HistoryEpochs epochs (a replay), and with
//     the other updates of the epoch (a candidate copy, confirmed by the
//     exact cosine).
//  3. Peer checks, products with the sum of the updates that passed: an
//     update whose cosine with the mean of the others is under
//     Uncorrelated × the epoch's median is not training this model
//     (against a mean of fewer than UncorrelatedMinPeers others, whose
//     own parts make honest cosines spread to 0 and below, only when
//     the cosine is also what a random direction's is, |cos|·√n under
//     RandomZ); one that, by least squares on the unit vectors of that
//     mean and of the previous average, lies more along the previous
//     average (by StaleMargin) was trained from the previous epoch's
//     parameters. Checked against a mean of StaleMinPeers other updates
//     or more (the mean of fewer carries their own parts as much as the
//     epoch's direction), and for claims of StaleMinSteps steps or more:
//     AdamW's first moment carries about 1/(1−β1) steps of the previous
//     epoch's gradients into the next, so an honest epoch's first steps
//     do point along the previous average.
//  4. The lane test (lane.go), forward passes only: does the update fit
//     the miner's own windows better than windows nobody trained on?
//
// # The lane test
//
// This is Templar's Gauntlet (VALIDATION.md) made sharper. For update Δ
// and the comparison C = c·M, Δ's projection on the mean M of the epoch's
// updates that passed, each window w gets d_w = L_w(θ−C) − L_w(θ−Δ). Δ is
// applied whole (η = 1: θ−Δ is the miner's own end point), so no step size
// is chosen and every miner is scaled alike. The statistic is Welch's t of
// d over the miner's windows against d over RefWindows reference windows:
// over all of them (All), over HeadWindows drawn from the first half of the
// claimed samples (Head) and TailWindows from the second (Tail). Under an
// update not trained on the lane each is about N(0, 1); honest ones sit
// well above (see Figures). A miner is caught when All or Tail falls under
// LaneFloor in one audit, or when the mean of All, Head or Tail over its
// last LaneEpochs audits falls under AllMean, HeadMean or TailMean; it
// passes when All and Tail reach LanePass; otherwise the audit is
// Inconclusive.
//
// Each threshold catches only where the test has power there in this run:
// where the median of its statistic over the tested updates of the last
// LaneEpochs audited epochs (Evidence.Power) clears it by PowerZ (2) noise
// widths, a width being 1 for one audit's t statistic and 1/√LaneEpochs
// for a mean of LaneEpochs of them. An honest miner's statistic spreads
// about that median (that noise, and more for a miner that fits less than
// the others), while an untrained update's is about N(0, 1) in any run:
// where the honest median sits near a threshold, a catch there could as
// well fall on an honest miner as on a cheater, so the test catches no one
// by that threshold and the audit is Pass or Inconclusive. With
// DefaultConfig, the single-audit floor needs a median All (Tail) of 1,
// the 3-audit means a median All of 2.65, Tail of 3.15 and Head of 1.15;
// the copy rule below a median All of copyMargin (3). The sample sets how
// far honest statistics reach: they grow about as the square root of the
// windows (WithWindows; a miner's half holds at most its claimed
// samples).
//
// Windows are drawn with the validator's private randomness, after the
// miner committed to its update, uniformly over the claimed samples but
// the last ⌊1/(1−β1)⌋ steps' (at most half the steps): AdamW has applied
// only 1 − β1^r of a gradient r steps later, so those windows are fit only
// part way when the epoch ends. A miner therefore has to train on all of
// its claim to pass, and a claim beyond what it trained shows in Tail.
//
// # Each cheat (the list) and what catches it
//
//   - Random update of an honest norm: its cosine with the others' mean is
//     about 1/√n (n the parameters; at most 0.014 in the simulation)
//     against honest cosines of 0.44 and more: Uncorrelated; with fewer
//     than UncorrelatedMinPeers others, |cos|·√n is about |N(0, 1)|, under
//     RandomZ (5). The lane test would also see N(0, 1).
//   - Zero update: the vector check.
//   - Honest update ×5: AdamW cannot move a coordinate further than
//     Σ lr·(1.165 + λ|θ|); honest updates reach 0.54–0.94 of that (a
//     coordinate whose gradient keeps its sign moves ±lr every step), so
//     ×5 is at 2.7 or more and ×2 at 1.08 or more, past BoundSlack. Exact,
//     needs no peer, and also refuses a learning rate above the
//     schedule's.
//   - Copy of another miner's update: the exact cosine pairs them; the lane
//     test names the copy, whose own lane sees N(0, 1) while the original's
//     sees its honest statistic (the copy needs a lane statistic copyMargin
//     below the original's, or to fail the test outright, so an original
//     with a weak epoch is not taken for the copy). Who committed first
//     does not matter. A copy of a miner not audited this epoch fails the
//     lane test alone; a copy with noise added to dodge the cosine too.
//   - Stale update, last epoch's (or any of the last HistoryEpochs, its
//     own or another's): the sketch of a replay equals the kept one
//     (sketch cosine 1 against at most 0.64 between honest updates of
//     different epochs in the simulation, 0.98 early in the demo run of
//     dtrain swarm, 0.9992 in a tiny one: see Tolerances); and AdamW's bound for this
//     epoch's rates and θ often refuses it too. Stale, trained from the
//     previous epoch's parameters on this epoch's lane: it is an update of
//     the previous epoch, so it lies along the previous average rather than
//     along this epoch's mean (coordinates Prev − Now ≥ 0.44 against
//     ≤ −0.35 for honest claims of 20 steps or more). Its lane test would
//     pass: the data is right.
//   - Trained on data other than its assignment: the lane test, whose
//     statistic is then N(0, 1) against a median of 5 for honest miners.
//   - Free-rider echoing the last average: the vector check (cosine 1 with
//     the previous average; echoes of older averages are replays), and
//     often the bound.
//   - Inflated sample count (claims 4× what it trained): a claim beyond
//     inner_steps·accum·micro is refused outright; within it, the second
//     half of the claimed samples holds only untrained windows, so Tail is
//     N(0, 1) against about 5 for honest miners, and All halves. Also the
//     bound is checked with the claimed steps' learning rates, which cannot
//     help the claim.
//   - Split view: the commitment (see above). This package must be given
//     the committed, decoded vector and the weight the round used.
//
// # What is taken from Templar and Subnet 38, and why this is better
//
//   - Templar's Gauntlet is the core of the lane test: apply the update,
//     compare the loss on the miner's own data with that on random data.
//     Changed: the update is applied whole, not θ − lr·0.2·g with each
//     tensor clipped to the peers' median norm, which hides a ×5 update
//     rather than catching it (here the bound does); each window is paired
//     with the shared part of the update (C above), which removes most of
//     the window-to-window variance: in the simulation an honest statistic
//     of about 5 from 64 windows, where Templar needs an EMA (0.05) of a ±1
//     sign over many windows; and the test asks a t statistic against a
//     threshold, over at most 3 audits, so a verdict comes within 3 epochs.
//     Templar's copy test (overlap of top-k indices ≥ 0.4, the later
//     uploader penalised) needs upload order and trusts it; here the data
//     decides. Templar's gradient score (relative loss gain on random data)
//     is the Pass quality.
//   - Subnet 38 replays the miner's whole training and compares full
//     weights by cosine: it costs the miner's compute again, and any model
//     near the start has a cosine ≈ 1 with any other, so lazy and honest
//     look alike. Here nothing is replayed: the bound, the sketches and the
//     peer checks cost a few passes over the vectors, and the lane test
//     costs forward passes on 64 windows and 32 shared ones, whatever the
//     length of the epoch. Its 2024 check (sum|grad| of one layer on
//     batches the validator picks) needs the miner to answer questions
//     after the fact; here the miner only commits to its update.
//
// # Cost
//
// Per audited miner: 2·(RefWindows + HeadWindows + TailWindows) = 128
// forward passes of one window, plus RefWindows shared by the epoch. A
// miner's epoch is S·A·B windows through forward and backward (about 3
// forwards each): the audit is ≤ 10% of it when the audited miners train
// at least 427 windows an epoch on average. A 500-step DiLoCo epoch of 64
// windows a step is 32,000 windows (0.13%); dtrain's demo default (10
// steps of 16) is 160 windows, 27%, so a demo validator should audit each
// miner about every third epoch. A validator that needs more windows for
// power (see Figures) pays in proportion: node/validator's default of 96
// (WithWindows) is 3 times DefaultConfig's 32.
//
// # Figures
//
// The simulation in this package's tests (simulation_test.go, run with
// DTRAIN_VERIFY_TRIALS=20) trains a 1-layer GPT-2 (n_embd 32, vocabulary
// 256, 32 tokens) on a synthetic corpus: six honest miners of 40, 40, 40,
// 30, 20 and 10 inner steps of 16 windows (lr 3e-3 after warmup, AdamW,
// outer Nesterov 0.7/0.9) and one cheater of each kind, honest in epoch 0
// and cheating from epoch 1, all averaged by claimed samples; one
// validator audits all 15 every epoch. In 20 trials every cheater was
// caught within 3 epochs of starting, 20/20 for each kind: in its first
// cheating epoch, but for the lane test's (another lane: epoch 1 to 3;
// 4× samples: mostly the third, when its 3 audits are all cheats). In
// those trials and 20 of honest miners alone, no honest audit of 960 was a
// Cheat (7 Inconclusive); fed to node/score, every honest miner kept at
// least half the honest median weight, and every caught cheater fell to 0.
// The lowest honest 3-audit lane means were All 2.92, Tail 2.68, Head 1.37
// (thresholds 1.5, 2, 0); the highest of cheaters whose 3 audits all
// cheated, All 0.96 (another lane, copies) and Tail 1.32 (4× samples).
// The audits' compute was 0.090 of the audited honest miners' (forward
// tokens, a backward counted as 2 forwards); in CPU seconds 0.11–0.13, the
// difference being libtorch's per-call cost of one-window forward passes
// on a 60k-parameter model, which a real model's FLOPs dwarf. The lane
// test's power medians of those epochs were at their lowest All 3.70, Tail
// 3.38 and Head 1.91, over the 2.65, 3.15 and 1.15 PowerZ asks (with the
// cheaters among the tested updates); asked a flat 2 in t above each
// threshold instead, the Tail's 4 went unmet and the 4× samples cheater
// escaped in 3 trials of 20.
//
// node/validator's TestValidatorChecksWork is a weaker run: three honest
// miners of 60 inner steps of 4 windows (n_embd 16, 8 tokens, lr 1e-2),
// audited together every epoch. Scored on the same audits in 8 runs (6 at
// 96 windows), the lowest honest 3-audit means were All 1.58 and Tail 1.79
// at 32 windows, at the thresholds; 1.81 and 2.35 at 64; 2.76 and 3.19 at
// 96, where the power medians cleared All's and Tail's thresholds in 71
// and 68 audits of 71. No honest audit was caught by the lane test at any
// of the three sizes; main's rule (an epoch's median All of 3 for every
// threshold) caught one at 32. One honest epoch-0 update had a cosine of
// −0.09 with the mean of the other two (median 0.25), which the relative
// Uncorrelated threshold caught before UncorrelatedMinPeers. In 6 runs of
// that test at node/validator's defaults (96 windows), 68 of 69 honest
// audits passed and one was Inconclusive; the lowest 3-audit means were
// All 3.42, Tail 3.22, Head 2.25, the lowest power medians All 4.09, Tail
// 3.17, Head 2.33; the audits cost 0.63–0.67 of the audited miners'
// compute (forward tokens).
//
// # Tolerances
//
// The bound allows BoundSlack (5%) for float32 rounding and the
// all-reduce's codecs and error feedback. The lane test compares losses
// the validator computes itself, twice per window on the same machine, so
// CPU differences between machines move a statistic by far less than its
// own noise (about 1 under a cheater). Cosine thresholds (0.99999 for
// copies, echoes and sketches) sit above every honest value seen: 0.84
// between two miners' sketches and 0.64 between epochs in the simulation,
// but 0.94 and 0.98 in the first epochs of dtrain swarm's demo model (6.85M
// parameters, loss falling from 10 to 6: every update then points mostly
// along the same few directions), and 0.9992 with the previous average in
// cmd/dtrain's tiny swarm (2 inner steps: AdamW's first steps move each
// coordinate by about lr·sign(g), the same signs epoch after epoch), where
// 0.95 and 0.99 called honest miners replays and echoes. A replay, echo or
// copy sent as it was is at 1 (bit for bit; within 1e-5 through int8's
// quantization); one with noise added to get under the threshold still
// trained on no lane of this epoch's, which only the lane test sees, and
// only in a run where it has power.
//
// # Limits
//
//   - The lane test's power depends on the run: the learning rate, the
//     windows per step (a window's share of a step), the model's capacity
//     and how much of each window can be fit. Its thresholds are in t
//     units, and DefaultConfig is what the simulation supports. In a run
//     whose honest medians sit within PowerZ noise widths of a threshold,
//     the test catches no one by it (honest miner or cheater): such a run should
//     log Evidence (Lane, Power) and raise the windows (WithWindows) until
//     the medians clear the thresholds. The margin is on the median: an
//     honest miner that fits much less than the others (far fewer steps,
//     a different data distribution) can still fall under a threshold.
//   - A miner that trains only part of its claim (the head, say) is caught
//     only as far as All, Head and Tail weaken; one that skips the last
//     ⌊1/(1−β1)⌋ steps is not caught at all (10 of S steps).
//   - The comparisons assume most audited updates are honest: a majority
//     of cheaters moves the median cosine, the mean M and the lane test's
//     power medians (enough untrained updates among the tested ones turn
//     the lane test off). A miner that trains on a victim's lane and joins
//     the audit puts 1/m of that into M and so lowers the victim's
//     statistic by up to about 1/m.
//   - Gradients mode is not covered: its update is a mean gradient, with
//     no AdamW bound and no end point to apply.
package verify
