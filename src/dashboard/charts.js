// Time charts drawn as SVG by hand: a y axis with round ticks, a time axis with clock labels, the data as
// a line or as bars (one per bucket), and a text alternative. Drawn at the element's own width, so the
// labels keep their size on a phone.

const NS = 'http://www.w3.org/2000/svg';
const MIN_BUCKETS = 8;

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** 0, and 3 to 5 round steps up to at least `max`. */
export function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const ticks = [];
  for (let v = 0; v < max + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((x) => x * 1000);

/** Time ticks on round clock values, about one per `px` pixels. */
export function timeTicks(t0, t1, width, px = 90) {
  const span = Math.max(1, t1 - t0);
  const want = Math.max(1, Math.floor(width / px));
  let step = STEPS.find((st) => span / st <= want) || Math.ceil(span / want / 86400000) * 86400000;
  const offset = new Date(t0).getTimezoneOffset() * 60000;
  const at = (st) => {
    const out = [];
    for (let t = Math.ceil((t0 - offset) / st) * st + offset; t <= t1; t += st) out.push(t);
    return out;
  };
  let ticks = at(step);
  // A narrow chart whose span holds one round step only (an 8-minute window and 5-minute steps, say)
  // would keep one label: the next finer step gives it two at least.
  for (let i = STEPS.indexOf(step) - 1; ticks.length < 2 && i >= 0; i--) {
    step = STEPS[i];
    ticks = at(step);
  }
  return { ticks, step };
}

function clock(t, step, spanMs) {
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const time = step < 60000 ? `${hm}:${pad(d.getSeconds())}` : hm;
  return spanMs > 86400000 ? `${pad(d.getDate())}/${pad(d.getMonth() + 1)} ${time}` : time;
}

/** The time span of bars: at least MIN_BUCKETS wide, the bars in the middle (one minute of sending is a bar, not the box). */
export function barDomain(points, bucketMs) {
  if (points.length === 0) return [Date.now() - MIN_BUCKETS * bucketMs, Date.now()];
  const pad = Math.max(0, Math.ceil((MIN_BUCKETS - points.length) / 2)) * bucketMs;
  return [points[0].t - pad, points[points.length - 1].t + bucketMs + pad];
}

/**
 * Draws into `svg`: `points` [{t (ms), v}], `kind` 'line' | 'bars' (`bucketMs` wide), `domain` [t0, t1] (else from the points), `yMax` (fixed, else
 * from the data), `yFormat` for tick labels, `yTitle`, and `empty` (the text shown before any data).
 */
export function drawChart(
  svg,
  { points, kind = 'line', bucketMs = 60000, domain, yMax, yFormat = (v) => String(v), yTitle, empty, color, label },
) {
  const width = Math.max(260, Math.round(svg.parentElement.clientWidth || 720));
  const height = width < 500 ? 180 : 200;
  const m = { left: 52, right: 14, top: 12, bottom: 34 };
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('role', 'img');
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;

  const values = points.map((p) => p.v);
  const ticksY = niceTicks(yMax !== undefined ? yMax : Math.max(0, ...values));
  const top = ticksY[ticksY.length - 1] || 1;
  const y = (v) => m.top + ph - (Math.min(v, top) / top) * ph;

  let [t0, t1] =
    domain ||
    (kind === 'bars'
      ? barDomain(points, bucketMs)
      : [points.length ? points[0].t : Date.now() - 60000, points.length ? points[points.length - 1].t : Date.now()]);
  if (t1 - t0 < 10000) {
    const mid = (t0 + t1) / 2;
    t0 = mid - 5000;
    t1 = mid + 5000;
  }
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * pw;

  const grid = s('g', { class: 'grid' });
  const axisY = s('g', { class: 'axis axis-y' });
  for (const v of ticksY) {
    grid.append(s('line', { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v) }));
    axisY.append(s('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, yFormat(v)));
  }
  const axisX = s('g', { class: 'axis axis-x' });
  axisX.append(s('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph }));
  axisY.append(s('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph }));
  const { ticks, step } = timeTicks(t0, t1, pw);
  for (const t of ticks) {
    axisX.append(s('line', { x1: x(t), x2: x(t), y1: m.top + ph, y2: m.top + ph + 4 }));
    // A label at either end is anchored inside the chart, not cut by its edge.
    const anchor = x(t) > width - 30 ? 'end' : x(t) < 30 ? 'start' : 'middle';
    axisX.append(s('text', { x: x(t), y: m.top + ph + 16, 'text-anchor': anchor, class: 'tick-time' }, clock(t, step, t1 - t0)));
  }
  if (yTitle) axisY.append(s('text', { x: m.left + 4, y: m.top + 10, class: 'axis-title' }, yTitle));
  axisX.append(s('text', { x: m.left + pw, y: height - 2, 'text-anchor': 'end', class: 'axis-title' }, 'local time'));
  svg.append(grid, axisY, axisX);

  const data = s('g', { class: 'data', style: `color:${color}` });
  if (points.length === 0) {
    svg.append(s('text', { x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle', class: 'empty' }, empty || 'no data yet'));
  } else if (kind === 'bars') {
    const bw = Math.max(2, (bucketMs / (t1 - t0)) * pw - 2);
    for (const p of points) {
      data.append(s('rect', { x: x(p.t) + 1, y: y(p.v), width: bw, height: Math.max(0, m.top + ph - y(p.v)), fill: 'currentColor' }));
    }
  } else {
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    data.append(s('path', { d, fill: 'none', stroke: 'currentColor', 'stroke-width': 2 }));
    if (points.length < 40) for (const p of points) data.append(s('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, fill: 'currentColor' }));
  }
  svg.append(data);

  const last = points[points.length - 1];
  const summary = last
    ? `${label}: ${points.length} points from ${new Date(points[0].t).toLocaleTimeString()} to ${new Date(last.t).toLocaleTimeString()}, latest ${yFormat(last.v)}, highest ${yFormat(Math.max(...values))}`
    : `${label}: ${empty || 'no data yet'}`;
  svg.setAttribute('aria-label', summary);
  svg.dataset.points = String(points.length);
}
