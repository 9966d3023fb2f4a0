// Label names from a file, the way `zsindex labels add --file` reads them:
// .txt one per line (# comments), .csv first column (a "label"/"name" header is skipped),
// .json a list of names or {label|name: ...} objects, an object keyed by name, or {"labels": ...}.
// Only names travel to the API; descriptions and per-label templates stay in the CLI.

function csvFirstColumn(text) {
  const names = [];
  for (const line of text.split(/\r?\n/)) {
    let cell = '';
    if (line.startsWith('"')) {
      const end = line.indexOf('"', 1);
      cell = end > 0 ? line.slice(1, end) : line.slice(1);
    } else {
      cell = line.split(',')[0];
    }
    names.push(cell.trim());
  }
  if (names.length && ['label', 'name'].includes(names[0].toLowerCase())) names.shift();
  return names.filter(Boolean);
}

function jsonNames(text) {
  let data = JSON.parse(text);
  if (data && !Array.isArray(data) && typeof data === 'object' && 'labels' in data) data = data.labels;
  if (Array.isArray(data)) {
    return data.map((item) => (typeof item === 'string' ? item : item && (item.label || item.name))).filter(Boolean);
  }
  if (data && typeof data === 'object') return Object.keys(data);
  throw new Error('expected a list or an object of labels');
}

export async function labelsFromFile(file) {
  const text = await file.text();
  const name = file.name.toLowerCase();
  if (name.endsWith('.json')) return jsonNames(text);
  if (name.endsWith('.csv')) return csvFirstColumn(text);
  return text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s && !s.startsWith('#'));
}
