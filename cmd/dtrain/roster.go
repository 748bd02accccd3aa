package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/dtrain-dev/dtrain/torch"
)

func rosterCommand() *cli.Command {
	return &cli.Command{
		Name:  "roster",
		Usage: "make the keys and signed rosters that say who may take part in a run (swarm.owner)",
		Subcommands: []*cli.Command{
			{
				Name:      "key",
				Usage:     "create an identity key in FILE unless one is there, and print its peer id (a run owner's key, or a miner's net.key_file)",
				ArgsUsage: "FILE",
				Action:    rosterKey,
			},
			{
				Name:  "sign",
				Usage: "sign a roster of the run with the owner's key: its members may take part, nobody else (with the owner, validators and bootstrap peers)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key", Required: true, Usage: "the owner's key file (dtrain roster key)"},
					&cli.StringFlag{Name: "run", Required: true, Usage: "the run id (run_id of its configs)"},
					&cli.StringSliceFlag{Name: "member", Usage: "a member's peer id; repeat for each"},
					&cli.StringFlag{Name: "members-file", Usage: "a file of members' peer ids, one per line (# starts a comment)"},
					&cli.Uint64Flag{Name: "version", Usage: "the roster's version; peers take only a newer one than they hold (default: one more than --out's, or 1)"},
					&cli.StringFlag{Name: "out", Required: true, Usage: "the roster file to write"},
				},
				Action: rosterSign,
			},
			{
				Name:      "show",
				Usage:     "print a roster file's run, version and members, and check its signature when --owner is given",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "owner", Usage: "the run owner's peer id (swarm.owner): check the signature"},
				},
				Action: rosterShow,
			},
		},
	}
}

func rosterKey(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("usage: dtrain roster key FILE")
	}
	k, err := netx.LoadOrCreateKey(c.Args().First())
	if err != nil {
		return err
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, id)
	return nil
}

func rosterSign(c *cli.Context) error {
	keyPath, out := c.String("key"), c.String("out")
	if _, err := os.Stat(keyPath); err != nil {
		return fmt.Errorf("--key: %w (dtrain roster key FILE creates one)", err)
	}
	k, err := netx.LoadOrCreateKey(keyPath)
	if err != nil {
		return err
	}
	owner, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return err
	}
	ids := c.StringSlice("member")
	if f := c.String("members-file"); f != "" {
		more, err := readMembers(f)
		if err != nil {
			return err
		}
		ids = append(ids, more...)
	}
	members := make([]peer.ID, 0, len(ids))
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return fmt.Errorf("member %q is not a peer id: %w", s, err)
		}
		members = append(members, id)
	}
	var prev uint64
	if b, err := os.ReadFile(out); err == nil {
		r, err := roster.Open(b, owner, c.String("run"))
		if err != nil {
			return fmt.Errorf("--out %s holds no roster of run %q signed by this key (%w): choose another file", out, c.String("run"), err)
		}
		prev = r.Version
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	version := c.Uint64("version")
	switch {
	case !c.IsSet("version"):
		version = prev + 1
	case version <= prev && prev > 0:
		return fmt.Errorf("--version %d is not newer than %s's %d: peers holding it would ignore the new roster", version, out, prev)
	}
	r, err := roster.New(c.String("run"), version, members)
	if err != nil {
		return err
	}
	enc, err := roster.Sign(r, k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := torch.WriteFileAtomic(out, enc); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: run %s, version %d, %d members, signed by %s\n", out, r.Run, r.Version, len(r.Members), owner)
	if len(enc) > netx.DefaultMaxGossipSize-1024 {
		fmt.Fprintf(c.App.ErrWriter, "warning: %d bytes is more than gossip carries (%d): hand the file to every peer (swarm.roster_file)\n", len(enc), netx.DefaultMaxGossipSize)
	}
	return nil
}

// readMembers reads peer ids one per line; blank lines and text after #
// are skipped.
func readMembers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--members-file: %w", err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			ids = append(ids, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--members-file %s: %w", path, err)
	}
	return ids, nil
}

func rosterShow(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("usage: dtrain roster show [--owner ID] FILE")
	}
	b, err := os.ReadFile(c.Args().First())
	if err != nil {
		return err
	}
	r, err := roster.Decode(b)
	if err != nil {
		return err
	}
	verdict := "signature not checked (give --owner)"
	if s := c.String("owner"); s != "" {
		owner, err := peer.Decode(s)
		if err != nil {
			return fmt.Errorf("--owner %q is not a peer id: %w", s, err)
		}
		if _, err := roster.Open(b, owner, r.Run); err != nil {
			return err
		}
		verdict = "signed by " + owner.String()
	}
	var w bytes.Buffer
	fmt.Fprintf(&w, "run %s, version %d, %d members, %s\n", r.Run, r.Version, len(r.Members), verdict)
	for _, m := range r.Members {
		fmt.Fprintln(&w, m)
	}
	_, err = c.App.Writer.Write(w.Bytes())
	return err
}

// openRoster returns the roster book of a run whose owner signs its
// membership: nil when owner is empty; the file is relative to outDir.
func openRoster(owner, file, outDir, run string) (*roster.Book, error) {
	if owner == "" {
		return nil, nil
	}
	id, err := peer.Decode(owner)
	if err != nil {
		return nil, fmt.Errorf("swarm.owner: %w", err)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(outDir, file)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	book, err := roster.NewBook(roster.BookConfig{Owner: id, Run: run, Path: file, Write: torch.WriteFileAtomic})
	if err != nil {
		return nil, fmt.Errorf("swarm.roster_file: %w", err)
	}
	if r, ok := book.Current(); ok {
		log.Info().Uint64("version", r.Version).Int("members", len(r.Members)).Str("file", file).Msg("roster")
	} else {
		log.Warn().Str("file", file).Msg("no roster yet: admitting the owner, the validators and the bootstrap peers until a peer gossips one")
	}
	return book, nil
}
