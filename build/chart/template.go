package main

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A document is one YAML object from deploy/ on its way to becoming a Helm
// template. Edits leave tokens in its nodes (plain words that YAML encodes
// as they are); render encodes the document and then turns each token into
// template text: an action in place of the token, or a block in place of
// the whole line that holds it.
type document struct {
	source  string // the file in deploy/, for messages
	node    *yaml.Node
	next    int
	actions map[string]string
	blocks  map[string]func(indent string) string
}

func newDocument(source string, node *yaml.Node) *document {
	return &document{source: source, node: node, actions: map[string]string{}, blocks: map[string]func(string) string{}}
}

func (d *document) token() string {
	d.next++
	return fmt.Sprintf("CHARTTOKEN%dX", d.next)
}

// action makes the scalar n the template text action.
func (d *document) action(n *yaml.Node, action string) {
	tok := d.token()
	d.actions[tok] = action
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: tok, HeadComment: n.HeadComment, LineComment: n.LineComment}
}

// replaceInScalars replaces old with action inside every scalar of n.
func (d *document) replaceInScalars(n *yaml.Node, old, action string) {
	tok := d.token()
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, old) {
			n.Value = strings.ReplaceAll(n.Value, old, tok)
			d.actions[tok] = action
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

// blockValue makes the value of key in mapping m the block that value
// writes after "key:", given the indentation of the key.
func (d *document) blockValue(m *yaml.Node, key string, value func(indent string) string) error {
	v := get(m, key)
	if v == nil {
		return fmt.Errorf("%s: no %s to make a chart value", d.source, key)
	}
	tok := d.token()
	d.blocks[tok] = func(indent string) string { return indent + key + ":" + value(indent) }
	*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: tok}
	return nil
}

// appendBlock adds block as the last entry of the mapping or sequence n:
// block gets the indentation of the entries and returns whole lines.
func (d *document) appendBlock(n *yaml.Node, block func(indent string) string) {
	tok := d.token()
	d.blocks[tok] = block
	switch n.Kind {
	case yaml.MappingNode:
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: tok}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""})
	case yaml.SequenceNode:
		n.Style &^= yaml.FlowStyle
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: tok})
	}
}

// insertBlockAfter adds block to mapping m right after key.
func (d *document) insertBlockAfter(m *yaml.Node, key string, block func(indent string) string) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			tok := d.token()
			d.blocks[tok] = block
			entry := []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: tok}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}}
			m.Content = append(m.Content[:i+2], append(entry, m.Content[i+2:]...)...)
			return nil
		}
	}
	return fmt.Errorf("%s: no %s to add chart values after", d.source, key)
}

// delimiters escapes the template delimiters deploy/ holds as text (alert
// annotations, dashboard legends), so that Helm writes them as they are.
var delimiters = strings.NewReplacer("{{", "{{`{{`}}", "}}", "{{`}}`}}")

// render encodes the document and puts the template text in place of its tokens.
func (d *document) render() (string, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d.node); err != nil {
		return "", fmt.Errorf("%s: %w", d.source, err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("%s: %w", d.source, err)
	}
	text := wrapFolded(delimiters.Replace(buf.String()), maxWidth)
	used := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, line := range lines {
		for tok, block := range d.blocks {
			if strings.Contains(line, tok) {
				indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
				if strings.HasPrefix(strings.TrimLeft(line, " "), "- ") {
					// A sequence entry: its block writes "- " itself.
					indent = line[:strings.Index(line, "-")]
				}
				lines[i] = block(indent)
				used[tok] = true
			}
		}
		for tok, action := range d.actions {
			if strings.Contains(lines[i], tok) {
				lines[i] = strings.ReplaceAll(lines[i], tok, action)
				used[tok] = true
			}
		}
	}
	for tok := range d.blocks {
		if !used[tok] {
			return "", fmt.Errorf("%s: a chart block was lost while encoding", d.source)
		}
	}
	for tok := range d.actions {
		if !used[tok] {
			return "", fmt.Errorf("%s: a chart value was lost while encoding", d.source)
		}
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// maxWidth is where wrapFolded breaks lines, as deploy/ does by hand.
const maxWidth = 110

// wrapFolded breaks the lines of folded block scalars (">-") longer than
// width, which the encoder writes as one line each. A break between two
// words of a folded scalar reads back as the one space it replaces.
func wrapFolded(text string, width int) string {
	var out []string
	folded, keyIndent := false, 0
	for _, line := range strings.Split(text, "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if folded && strings.TrimSpace(line) != "" && indent <= keyIndent {
			folded = false
		}
		if !folded {
			out = append(out, line)
			if trimmed := strings.TrimSpace(line); strings.HasSuffix(trimmed, ">-") || strings.HasSuffix(trimmed, ">") && strings.HasSuffix(trimmed, ": >") {
				folded, keyIndent = true, indent
			}
			continue
		}
		for len(line) > width {
			cut := -1
			for i := width; i > indent; i-- {
				if line[i] == ' ' && line[i-1] != ' ' && i+1 < len(line) && line[i+1] != ' ' {
					cut = i
					break
				}
			}
			if cut < 0 {
				break
			}
			out = append(out, line[:cut])
			line = strings.Repeat(" ", indent) + line[cut+1:]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// get follows keys through nested mappings; nil if one is missing.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, key := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// mapping returns the mapping under key in m, adding an empty one if absent.
func mapping(m *yaml.Node, key string) *yaml.Node {
	if v := get(m, key); v != nil {
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// ident returns kind/name of an object, for messages and lookups.
func ident(obj *yaml.Node) string {
	kind, name := get(obj, "kind"), get(obj, "metadata", "name")
	if kind == nil || name == nil {
		return "?"
	}
	return kind.Value + "/" + name.Value
}
