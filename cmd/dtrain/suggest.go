package main

import "strings"

// closest is the candidate a mistyped name most likely meant, or "" when
// none is near: within min(2, len(name)/3) edits, transpositions counting
// as one (so "trian" finds "train"), or a prefix of three letters or more.
// urfave's own suggestion always names something, however far.
func closest(name string, candidates []string) string {
	limit := min(2, len(name)/3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		d := editDistance(name, c)
		if d > limit && len(name) >= 3 && strings.HasPrefix(c, name) {
			d = limit
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
