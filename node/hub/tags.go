package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Ref is a branch or tag of a repo.
type Ref struct {
	Name         string `json:"name"`
	Ref          string `json:"ref"`          // e.g. "refs/tags/run1.3"
	TargetCommit string `json:"targetCommit"` // commit sha
}

// Tag creates tag on revision (a branch, tag or commit) with message. A tag
// name already in use gives an error matching ErrTagExists.
func (c *Client) Tag(ctx context.Context, repo, revision, tag, message string) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	if err := checkRevision(revision); err != nil {
		return err
	}
	if err := checkRevision(tag); err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	req := map[string]string{"tag": tag}
	if message != "" {
		req["message"] = message
	}
	u := c.url("/api/models/" + repo + "/tag/" + url.PathEscape(revision))
	err := c.postJSON(ctx, u, "application/json", c.requestTimeout, req, nil)
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusConflict {
		return fmt.Errorf("tag %s@%s as %s: %w: %w", repo, revision, tag, ErrTagExists, err)
	}
	if err != nil {
		return fmt.Errorf("tag %s@%s as %s: %w", repo, revision, tag, err)
	}
	return nil
}

// ListTags returns repo's tags.
func (c *Client) ListTags(ctx context.Context, repo string) ([]Ref, error) {
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	var refs struct {
		Branches []Ref `json:"branches"`
		Tags     []Ref `json:"tags"`
	}
	if err := c.getJSON(ctx, c.url("/api/models/"+repo+"/refs"), &refs); err != nil {
		return nil, fmt.Errorf("list refs of %s: %w", repo, err)
	}
	return refs.Tags, nil
}

// LatestEpochTag returns the tag "{run}.{epoch}" of repo with the highest
// epoch, the newest checkpoint a run published. Tags of other runs and tags
// whose suffix is not a canonical decimal number are ignored; a run with no
// tag gives an error matching ErrNotFound.
func (c *Client) LatestEpochTag(ctx context.Context, repo, run string) (tag string, epoch uint64, err error) {
	tags, err := c.ListTags(ctx, repo)
	if err != nil {
		return "", 0, err
	}
	found := false
	for _, t := range tags {
		e, ok := ParseEpochTag(t.Name, run)
		if ok && (!found || e > epoch) {
			tag, epoch, found = t.Name, e, true
		}
	}
	if !found {
		return "", 0, fmt.Errorf("no %s.{epoch} tag in %s: %w", run, repo, ErrNotFound)
	}
	return tag, epoch, nil
}

// EpochTag names the tag of run's checkpoint at epoch: "{run}.{epoch}".
func EpochTag(run string, epoch uint64) string {
	return run + "." + strconv.FormatUint(epoch, 10)
}

// ParseEpochTag returns the epoch of tag if it is EpochTag(run, epoch).
func ParseEpochTag(tag, run string) (epoch uint64, ok bool) {
	rest, ok := strings.CutPrefix(tag, run+".")
	if !ok || run == "" {
		return 0, false
	}
	e, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || strconv.FormatUint(e, 10) != rest {
		return 0, false
	}
	return e, true
}
