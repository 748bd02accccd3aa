package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// parquetSource yields the "text" column of a parquet file (the layout of
// HuggingFace datasets' shards), one page of one row group at a time. Null
// values are skipped.
type parquetSource struct {
	path   string
	file   *os.File
	pf     *parquet.File
	column int // leaf index of "text"
	group  int // next row group
	pages  parquet.Pages
	values parquet.ValueReader
	page   parquet.Page
	buf    []parquet.Value
	queue  []parquet.Value // values read, not yet returned
	row    int64           // rows returned or skipped so far
	done   int64           // bytes of the row groups finished, for progress
}

func openParquet(path string) (_ Source, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkParquetFooter(f, st.Size()); err != nil {
		return nil, fmt.Errorf("%s: not a parquet file: %w", path, err)
	}
	var pf *parquet.File
	err = guard(func() (err error) {
		pf, err = parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: not a parquet file: %w", path, err)
	}
	var col *parquet.Column
	if err := guard(func() error { col, err = textColumn(pf); return err }); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &parquetSource{path: path, file: f, pf: pf, column: col.Index(), buf: make([]parquet.Value, 64)}, nil
}

// textColumn finds the "text" column and checks it holds strings.
func textColumn(pf *parquet.File) (*parquet.Column, error) {
	col := pf.Root().Column("text")
	if col == nil {
		var names []string
		for _, c := range pf.Root().Columns() {
			names = append(names, c.Name())
		}
		return nil, fmt.Errorf("no \"text\" column (columns: %q)", names)
	}
	if !col.Leaf() || col.Repeated() || col.Type().Kind() != parquet.ByteArray {
		return nil, fmt.Errorf("the \"text\" column is %s, want a string", describeColumn(col))
	}
	return col, nil
}

func describeColumn(col *parquet.Column) string {
	switch {
	case !col.Leaf():
		return "a group"
	case col.Repeated():
		return "a list"
	}
	return col.Type().Kind().String()
}

// checkParquetFooter rejects files whose footer length cannot be right
// before parquet-go allocates a buffer of that length.
func checkParquetFooter(f *os.File, size int64) error {
	if size < 12 {
		return fmt.Errorf("%d bytes, too short", size)
	}
	var tail [8]byte
	if _, err := f.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n+12 > size {
		return fmt.Errorf("footer of %d bytes in a %d-byte file", n, size)
	}
	return nil
}

// guard turns a panic inside parquet-go (which a corrupt file can cause)
// into an error: bad input must not crash the process.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("corrupt parquet data: %v", r)
		}
	}()
	return f()
}

func (s *parquetSource) Next() (Document, error) {
	for {
		for len(s.queue) > 0 {
			v := s.queue[0]
			s.queue = s.queue[1:]
			s.row++
			if v.IsNull() {
				continue
			}
			return Document{Text: string(v.ByteArray()), File: s.path, Row: s.row}, nil
		}
		if err := guard(s.fill); err != nil {
			if errors.Is(err, io.EOF) {
				return Document{}, io.EOF
			}
			return Document{}, fmt.Errorf("%s row group %d: %w", s.path, s.group, err)
		}
	}
}

// fill reads the next values into queue, moving to the next page and row
// group as each ends; io.EOF after the last row group.
func (s *parquetSource) fill() error {
	for {
		if s.values != nil {
			n, err := s.values.ReadValues(s.buf)
			if n > 0 {
				s.queue = s.buf[:n]
				return nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			s.releasePage()
		}
		if s.pages != nil {
			p, err := s.pages.ReadPage()
			if err == nil {
				s.page, s.values = p, p.Values()
				continue
			}
			s.pages.Close()
			s.pages = nil
			if !errors.Is(err, io.EOF) {
				return err
			}
		}
		groups := s.pf.RowGroups()
		if s.group >= len(groups) {
			return io.EOF
		}
		s.done += rowGroupBytes(s.pf, s.group)
		s.pages = groups[s.group].ColumnChunks()[s.column].Pages()
		s.group++
	}
}

func rowGroupBytes(pf *parquet.File, i int) int64 {
	if md := pf.Metadata(); i < len(md.RowGroups) {
		return md.RowGroups[i].TotalCompressedSize
	}
	return 0
}

func (s *parquetSource) releasePage() {
	if s.page != nil {
		parquet.Release(s.page)
	}
	s.page, s.values = nil, nil
}

// inputPos counts a row group's bytes once its reading starts.
func (s *parquetSource) inputPos() int64 { return s.done }

func (s *parquetSource) Close() error {
	s.releasePage()
	if s.pages != nil {
		s.pages.Close()
		s.pages = nil
	}
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
