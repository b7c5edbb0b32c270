// tiles_oracle reads a directory that `tracemark tlog export-tiles` wrote, with golang.org/x/mod's
// sumdb/note and sumdb/tlog as an independent implementation, and prints what they compute.
//
// Usage: go run tiles_oracle.go DIR VKEY OLD_SIZES INDICES   (sizes and indices comma-separated)
//
// It verifies the checkpoint's signature with sumdb/note, reads every tile through
// tlog.TileHashReader (which authenticates each tile against the signed tree hash), proves and
// checks the inclusion of the given entries (their hashes computed from the entry bundles) and the
// consistency from the given older sizes, and prints the proofs as JSON for the Python test to
// compare with tracemark's.  Any disagreement exits non-zero.  The C2SP path of a tile is the
// sumdb path without its height element ("tile/8/0/000" is "tile/0/000").
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type dirTiles struct{ dir string }

func c2spPath(t tlog.Tile) string {
	return strings.Replace(t.Path(), "tile/8/", "tile/", 1)
}

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func entry(dir string, size, index int64) []byte {
	bundle := index / 256
	width := size - bundle*256
	if width > 256 {
		width = 256
	}
	t := tlog.Tile{H: 8, L: 0, N: bundle, W: int(width)}
	path := strings.Replace(c2spPath(t), "tile/0/", "tile/entries/", 1)
	data, err := os.ReadFile(filepath.Join(dir, path))
	check(err)
	for i := int64(0); ; i++ {
		n := int64(binary.BigEndian.Uint16(data[:2]))
		if i == index%256 {
			return data[2 : 2+n]
		}
		data = data[2+n:]
	}
}

func numbers(text string) []int64 {
	var out []int64
	for _, field := range strings.Split(text, ",") {
		n, err := strconv.ParseInt(field, 10, 64)
		check(err)
		out = append(out, n)
	}
	return out
}

func b64(hashes []tlog.Hash) []string {
	out := []string{}
	for _, h := range hashes {
		out = append(out, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle:", err)
		os.Exit(1)
	}
}

func main() {
	dir, vkey := os.Args[1], os.Args[2]
	verifier, err := note.NewVerifier(vkey)
	check(err)
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	check(err)
	opened, err := note.Open(raw, note.VerifierList(verifier))
	check(err)
	lines := strings.Split(opened.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	check(err)
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	check(err)
	var root tlog.Hash
	copy(root[:], rootBytes)
	reader := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, dirTiles{dir})
	computed, err := tlog.TreeHash(size, reader)
	check(err)
	if computed != root {
		check(fmt.Errorf("tiles give root %x, checkpoint says %x", computed, root))
	}
	result := map[string]interface{}{"origin": lines[0], "size": size, "root": b64([]tlog.Hash{computed})[0]}
	records := []map[string]interface{}{}
	for _, index := range numbers(os.Args[4]) {
		proof, err := tlog.ProveRecord(size, index, reader)
		check(err)
		check(tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry(dir, size, index))))
		records = append(records, map[string]interface{}{"index": index, "proof": b64(proof)})
	}
	trees := []map[string]interface{}{}
	for _, old := range numbers(os.Args[3]) {
		proof, err := tlog.ProveTree(size, old, reader)
		check(err)
		oldRoot, err := tlog.TreeHash(old, reader)
		check(err)
		check(tlog.CheckTree(proof, size, root, old, oldRoot))
		trees = append(trees, map[string]interface{}{"old": old, "old_root": b64([]tlog.Hash{oldRoot})[0], "proof": b64(proof)})
	}
	result["records"] = records
	result["trees"] = trees
	check(json.NewEncoder(os.Stdout).Encode(result))
}
