package repo

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/strictjson"
)

// Target kinds: each version is two TUF targets, its manifest and its
// delivery list, named versions/<version>/<kind>.zst. The target file is
// the zstd object as stored (TUF's length and sha256 are the stored ones);
// the custom fields carry the content's digest and what a client decides
// on before fetching anything: version, channel, hardware.
const (
	KindManifest = "manifest"
	KindDelivery = "delivery"
)

// TargetName names version v's target of kind.
func TargetName(v layout.Version, kind string) string {
	return "versions/" + strconv.FormatUint(uint64(v), 10) + "/" + kind + ".zst"
}

// TargetFilePath is where a consistent-snapshot repository keeps a target
// file: targets/<dir>/<sha256>.<base> (TUF 5.7.3), immutable like objects.
func TargetFilePath(name string, stored digest.Digest) string {
	i := strings.LastIndexByte(name, '/')
	return "targets/" + name[:i+1] + stored.String() + "." + name[i+1:]
}

// Custom is a target's custom object.
type Custom struct {
	Version  layout.Version `json:"version"`
	Channel  string         `json:"channel"`
	Hardware string         `json:"hardware"`
	SHA256   digest.Digest  `json:"sha256"` // of the content, after decompression
	Size     int64          `json:"size"`
	// Only on the manifest target:
	Name    string    `json:"name,omitempty"`
	Notes   string    `json:"notes,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Entries int       `json:"entries,omitempty"`
}

// VersionTargets returns the two targets of version v.
func VersionTargets(channel, hardware string, v *VersionRef) (map[string]*metadata.TargetFiles, error) {
	out := map[string]*metadata.TargetFiles{}
	for _, kind := range []string{KindManifest, KindDelivery} {
		c := Custom{Version: v.Version, Channel: channel, Hardware: hardware}
		ref := v.Delivery
		if kind == KindManifest {
			ref = v.Manifest
			c.Name, c.Notes, c.Created, c.Entries = v.Name, v.Notes, v.Created, v.Entries
		}
		c.SHA256, c.Size = ref.SHA256, ref.Size
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		raw := json.RawMessage(b)
		name := TargetName(v.Version, kind)
		out[name] = &metadata.TargetFiles{Length: ref.StoredSize, Hashes: metadata.Hashes{"sha256": ref.Stored[:]}, Custom: &raw, Path: name}
	}
	return out, nil
}

// indexOf turns verified targets metadata into the client's view: every
// version with both of its targets, ascending. Targets outside versions/
// are left alone (a deployment may publish other files); a version's
// target that is malformed, or whose channel or hardware differs from the
// others', refuses the whole metadata, as a signed index did.
func indexOf(t *metadata.TargetsType) (*Index, error) {
	x := &Index{Serial: uint64(t.Version), Expires: t.Expires}
	byVer := map[layout.Version]*VersionRef{}
	first := true
	names := make([]string, 0, len(t.Targets))
	for n := range t.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasPrefix(name, "versions/") {
			continue
		}
		c, ref, kind, err := parseTarget(name, t.Targets[name])
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		if first {
			x.Channel, x.Hardware, first = c.Channel, c.Hardware, false
		} else if c.Channel != x.Channel || c.Hardware != x.Hardware {
			return nil, fmt.Errorf("target %s is for channel %q hardware %q, others for %q %q: %w", name, c.Channel, c.Hardware, x.Channel, x.Hardware, errdefs.ErrBadSignature)
		}
		v := byVer[c.Version]
		if v == nil {
			v = &VersionRef{Version: c.Version}
			byVer[c.Version] = v
		}
		if kind == KindManifest {
			v.Manifest, v.Name, v.Notes, v.Created, v.Entries = ref, c.Name, c.Notes, c.Created, c.Entries
		} else {
			v.Delivery = ref
		}
	}
	for _, v := range byVer {
		if v.Manifest.StoredSize == 0 || v.Delivery.StoredSize == 0 {
			return nil, fmt.Errorf("version %d lacks its manifest or delivery target: %w", v.Version, errdefs.ErrBadSignature)
		}
		x.Versions = append(x.Versions, *v)
	}
	sort.Slice(x.Versions, func(i, j int) bool { return x.Versions[i].Version < x.Versions[j].Version })
	return x, nil
}

func parseTarget(name string, tf *metadata.TargetFiles) (Custom, BlobRef, string, error) {
	var c Custom
	if tf.Custom == nil {
		return c, BlobRef{}, "", fmt.Errorf("no custom fields: %w", errdefs.ErrBadSignature)
	}
	if err := strictjson.Unmarshal(*tf.Custom, &c); err != nil {
		return c, BlobRef{}, "", fmt.Errorf("custom: %v: %w", err, errdefs.ErrBadSignature)
	}
	kind := ""
	for _, k := range []string{KindManifest, KindDelivery} {
		if name == TargetName(c.Version, k) {
			kind = k
		}
	}
	if kind == "" || c.Version == 0 {
		return c, BlobRef{}, "", fmt.Errorf("name does not match version %d: %w", c.Version, errdefs.ErrBadSignature)
	}
	h := tf.Hashes["sha256"]
	if len(h) != len(digest.Digest{}) {
		return c, BlobRef{}, "", fmt.Errorf("no sha256 hash: %w", errdefs.ErrBadSignature)
	}
	ref := BlobRef{SHA256: c.SHA256, Size: c.Size, StoredSize: tf.Length}
	copy(ref.Stored[:], h)
	if err := ref.check(); err != nil {
		return c, BlobRef{}, "", err
	}
	return c, ref, kind, nil
}
