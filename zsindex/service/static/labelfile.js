// Label lists in the page, read as the command line reads them.
//
// Files, as `zsindex labels add --file` reads them: .txt one per line (# comments); .csv as
// RFC 4180 (quoted cells may hold commas, doubled quotes and line breaks; an unterminated quote
// is an error), the label column being the first, or the `label`/`name` column of a header row
// (a row of label/name/description/template names, any order, any case); .json a list of names or
// {label|name: ...} objects, an object keyed by name, or {"labels": ...}. Only names travel to the
// API; descriptions and per-label templates stay in the CLI.
//
// Typed lists (splitLabels/formatLabels), one rule that round-trips any label set: several lines
// are one label a line (commas kept); a single line is comma-separated and quoted as in CSV, as
// the CLI's --labels is ('"red, dark",blue' is two labels).

/**
 * Rows of a CSV text (RFC 4180), each {line, cells}; `line` is where the row starts.
 * skipInitialSpace drops spaces after a comma, as Python's csv.reader(skipinitialspace=True).
 */
export function parseCsv(text, { skipInitialSpace = false } = {}) {
  const rows = [];
  let cells = [];
  let cell = '';
  let inQuotes = false; // inside a quoted cell
  let closed = false; // the cell was quoted and its closing quote is behind us
  let line = 1;
  let rowLine = 1;
  const endCell = () => {
    cells.push(cell);
    cell = '';
    closed = false;
  };
  const endRow = () => {
    const blank = cells.length === 0 && cell === '' && !closed; // an empty line is no row
    endCell();
    if (!blank) rows.push({ line: rowLine, cells });
    cells = [];
  };
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 1;
        } else {
          inQuotes = false;
          closed = true;
        }
      } else {
        if (c === '\n') line += 1;
        cell += c;
      }
    } else if (c === ',') {
      endCell();
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      endRow();
      line += 1;
      rowLine = line;
    } else if (closed) {
      throw new Error(`line ${line}: a quoted cell must end with a quote followed by a comma or the line's end`);
    } else if (c === '"' && cell === '') {
      inQuotes = true;
    } else if (!(skipInitialSpace && cell === '' && c === ' ')) {
      cell += c;
    }
  }
  if (inQuotes) throw new Error(`line ${rowLine}: unterminated quote; a quoted cell must end with a quote`);
  if (cell !== '' || cells.length || closed) endRow();
  return rows;
}

const HEADER_NAMES = /^(label|name|descriptions?|templates?)$/;

function csvNames(text) {
  const rows = parseCsv(text).filter((r) => r.cells.some((c) => c.trim()));
  let column = 0;
  if (rows.length) {
    const head = rows[0].cells.map((c) => c.trim().toLowerCase());
    const filled = head.filter(Boolean);
    const at = head.findIndex((c) => c === 'label' || c === 'name');
    if (at >= 0 && filled.every((c) => HEADER_NAMES.test(c))) {
      column = at;
      rows.shift();
    }
  }
  const names = [];
  for (const { line, cells } of rows) {
    const name = (cells[column] || '').trim();
    if (!name) throw new Error(`line ${line}: the label column is empty`);
    if (!names.includes(name)) names.push(name); // a label may span several rows
  }
  return names;
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
  if (name.endsWith('.csv')) return csvNames(text);
  return text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s && !s.startsWith('#'));
}

/**
 * Labels typed in the page: several lines are one label a line (commas kept); one line is
 * comma-separated, quoted as in CSV ('"red, dark",blue' is two labels). Blanks are dropped.
 */
export function splitLabels(text) {
  const lines = String(text || '').split(/\r\n|\r|\n/).map((s) => s.trim()).filter(Boolean);
  if (lines.length !== 1) return lines;
  let rows;
  try {
    rows = parseCsv(lines[0], { skipInitialSpace: true });
  } catch {
    throw new Error(`Cannot read the label list: quote a label holding a comma as in CSV, "red, dark",blue — or write one label a line.`);
  }
  return (rows.length ? rows[0].cells : []).map((s) => s.trim()).filter(Boolean);
}

function quoted(name) {
  return /[",\r\n]/.test(name) ? `"${name.replace(/"/g, '""')}"` : name;
}

/** The inverse of splitLabels: one label a line, or a single label quoted as in CSV where needed. */
export function formatLabels(labels) {
  return labels.length === 1 ? quoted(labels[0]) : labels.join('\n');
}
