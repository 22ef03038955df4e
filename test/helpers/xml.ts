// A small well-formedness check for the XML (SVG) the benchmark harness writes by hand: every
// tag closed in order, attributes quoted, no stray '<' or '&'. Not a parser; enough to catch a
// broken hand-written document.

/** Throws with the offending position when `text` is not well-formed; returns the element names seen. */
export function checkXml(text: string): string[] {
  const seen: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    const amp = /&(?!(?:amp|lt|gt|quot|apos|#\d+);)/.exec(chunk);
    if (amp !== null) throw new Error(`a bare '&' at ${i + amp.index}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(text);
    if (m === null) throw new Error(`a malformed tag at ${lt}: ${text.slice(lt, lt + 80)}`);
    const [, close, name, , selfClose] = m;
    if (close === '/') {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> at ${lt} closes <${open}>`);
    } else {
      seen.push(name!);
      if (selfClose !== '/') stack.push(name!);
    }
    i = tag.lastIndex;
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(', ')}`);
  return seen;
}
