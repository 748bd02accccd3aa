package datatest

import "testing"

func TestSplitWindows(t *testing.T) {
	tr, va := Split(t, 3500, 500, 8)
	// A dataset of n tokens holds the windows of seq inputs plus the next
	// target that fit.
	if tr.Len() == 0 || va.Len() == 0 || tr.Len() <= va.Len() {
		t.Fatalf("train %d windows, val %d", tr.Len(), va.Len())
	}
	x, y := make([]int32, 8), make([]int32, 8)
	if err := tr.Window(0, x, y); err != nil {
		t.Fatal(err)
	}
	want := Pattern(9)
	for i := range x {
		if x[i] != want[i] || y[i] != want[i+1] {
			t.Fatalf("window 0 = %v -> %v, want %v", x, y, want)
		}
	}
}
