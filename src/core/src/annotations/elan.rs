//! ELAN `.eaf` (EAF 3.0) export and import of AU events.
//!
//! Layout: one tier per coder, person and AU, `TIER_ID="AU12 alice"` (with
//! ` p<N>` for a person other than 0), `ANNOTATOR` the coder and
//! `PARTICIPANT` "person N"; each event is an annotation from its onset
//! frame's start to its offset frame's end, valued with its intensity
//! letter (empty when not coded). The apex goes on a child tier
//! `AU12 alice apex` (`Included_In` its AU tier): one annotation covering
//! the apex frame, valued "apex". The media is linked by absolute and
//! relative URL. Times are milliseconds, frames `round(ms * fps / 1000)`.
//!
//! Import is all or nothing: a tier that is not an AU tier, overlapping
//! annotations on one tier, an event past the media's end, or a reference
//! to a missing time slot refuses the file with the project unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event as Xml};

use super::events::EventSpan;
use super::intensity_letter;
use super::store::Store;
use crate::error::CoreError;

fn bad(path: &Path, reason: impl std::fmt::Display) -> CoreError {
    CoreError::LabelFile { path: path.to_path_buf(), reason: reason.to_string() }
}

fn io(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

/// Start of frame `f` in milliseconds.
fn ms(f: usize, fps: f64) -> i64 {
    (f as f64 * 1000.0 / fps).round() as i64
}

fn frame_at(ms: i64, fps: f64) -> usize {
    (ms as f64 * fps / 1000.0).round().max(0.0) as usize
}

fn tier_id(who: &str, person: u32, au: &str) -> String {
    if person == 0 { format!("{au} {who}") } else { format!("{au} {who} p{person}") }
}

/// Write every coder's events (or `who`'s) to `out`; `media`: the video
/// to link. Returns how many events.
pub fn export(store: &Store, who: Option<&str>, fps: f64, media: Option<&Path>, out: &Path) -> Result<usize, CoreError> {
    if !(fps > 0.0 && fps.is_finite()) {
        return Err(bad(out, format!("frame rate {fps} cannot place events in time")));
    }
    let events = store.events(who)?;
    let mut tiers: BTreeMap<(String, u32, String), Vec<&EventSpan>> = BTreeMap::new();
    for e in &events {
        tiers.entry((e.who.clone(), e.span.person, e.span.au.clone())).or_default().push(&e.span);
    }
    // One time slot per distinct time, in time order (as ELAN writes them).
    let mut slots: Vec<i64> = events.iter().flat_map(|e| [e.span.onset, e.span.offset + 1, e.span.apex, e.span.apex + 1]).map(|f| ms(f, fps)).collect();
    slots.sort_unstable();
    slots.dedup();
    let slot = |t: i64, slots: &Vec<i64>| format!("ts{}", slots.binary_search(&t).expect("a listed time") + 1);
    let mut body = String::new();
    let mut next_id = 0usize;
    let mut id = || {
        next_id += 1;
        format!("a{next_id}")
    };
    for ((who, person, au), spans) in &tiers {
        let tier = tier_id(who, *person, au);
        let head = |id: &str, extra: &str| {
            format!(
                "    <TIER LINGUISTIC_TYPE_REF=\"{}\" TIER_ID=\"{}\" ANNOTATOR=\"{}\" PARTICIPANT=\"person {person}\"{extra}>\n",
                if extra.is_empty() { "AU event" } else { "AU apex" },
                escape(id),
                escape(who.as_str())
            )
        };
        let mut apex = String::new();
        body.push_str(&head(&tier, ""));
        for s in spans {
            let (a, b) = (slot(ms(s.onset, fps), &slots), slot(ms(s.offset + 1, fps), &slots));
            let value = s.intensity.and_then(intensity_letter).map(String::from).unwrap_or_default();
            body.push_str(&format!(
                "        <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID=\"{}\" TIME_SLOT_REF1=\"{a}\" TIME_SLOT_REF2=\"{b}\"><ANNOTATION_VALUE>{value}</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>\n",
                id()
            ));
            let (a, b) = (slot(ms(s.apex, fps), &slots), slot(ms(s.apex + 1, fps), &slots));
            apex.push_str(&format!(
                "        <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID=\"{}\" TIME_SLOT_REF1=\"{a}\" TIME_SLOT_REF2=\"{b}\"><ANNOTATION_VALUE>apex</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>\n",
                id()
            ));
        }
        body.push_str("    </TIER>\n");
        body.push_str(&head(&format!("{tier} apex"), &format!(" PARENT_REF=\"{}\"", escape(tier.as_str()))));
        body.push_str(&apex);
        body.push_str("    </TIER>\n");
    }
    let mut media_xml = String::new();
    if let Some(m) = media {
        let abs = std::path::absolute(m).unwrap_or_else(|_| m.to_path_buf());
        let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mime = match m.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("mp4" | "m4v") => "video/mp4",
            Some("mov") => "video/quicktime",
            Some("avi") => "video/x-msvideo",
            Some("mkv") => "video/x-matroska",
            Some("webm") => "video/webm",
            _ => "video/*",
        };
        media_xml = format!(
            "        <MEDIA_DESCRIPTOR MEDIA_URL=\"file://{}\" MIME_TYPE=\"{mime}\" RELATIVE_MEDIA_URL=\"./{}\"/>\n",
            escape(abs.to_string_lossy()),
            escape(name.as_str())
        );
    }
    let mut time_order = String::new();
    for (i, t) in slots.iter().enumerate() {
        time_order.push_str(&format!("        <TIME_SLOT TIME_SLOT_ID=\"ts{}\" TIME_VALUE=\"{t}\"/>\n", i + 1));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<ANNOTATION_DOCUMENT AUTHOR=\"auscope\" DATE=\"{date}\" FORMAT=\"3.0\" VERSION=\"3.0\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"http://www.mpi.nl/tools/elan/EAFv3.0.xsd\">
    <HEADER MEDIA_FILE=\"\" TIME_UNITS=\"milliseconds\">
{media_xml}        <PROPERTY NAME=\"auscope:fps\">{fps}</PROPERTY>
        <PROPERTY NAME=\"lastUsedAnnotationId\">{next_id}</PROPERTY>
    </HEADER>
    <TIME_ORDER>
{time_order}    </TIME_ORDER>
{body}    <LINGUISTIC_TYPE GRAPHIC_REFERENCES=\"false\" LINGUISTIC_TYPE_ID=\"AU event\" TIME_ALIGNABLE=\"true\"/>
    <LINGUISTIC_TYPE CONSTRAINTS=\"Included_In\" GRAPHIC_REFERENCES=\"false\" LINGUISTIC_TYPE_ID=\"AU apex\" TIME_ALIGNABLE=\"true\"/>
    <CONSTRAINT DESCRIPTION=\"Time alignable annotations within the parent annotation's time interval, gaps are allowed\" STEREOTYPE=\"Included_In\"/>
</ANNOTATION_DOCUMENT>
",
        date = iso_now()
    );
    let tmp = out.with_extension("eaf.partial");
    std::fs::write(&tmp, xml).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| io(out, e))?;
    Ok(events.len())
}

/// Now in ISO 8601 (UTC), as EAF's DATE wants it.
fn iso_now() -> String {
    let s = super::store::now_ms() / 1000;
    let (days, secs) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Civil date from days since 1970 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00", secs / 3600, secs / 60 % 60, secs % 60)
}

/// One tier as read.
#[derive(Debug, Default)]
struct Tier {
    id: String,
    annotator: Option<String>,
    participant: Option<String>,
    parent: Option<String>,
    /// (start slot, end slot, value).
    annotations: Vec<(String, String, String)>,
}

fn attrs(e: &BytesStart, path: &Path) -> Result<BTreeMap<String, String>, CoreError> {
    let mut out = BTreeMap::new();
    for a in e.attributes() {
        let a = a.map_err(|e| bad(path, format!("malformed XML attribute: {e}")))?;
        let v = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| bad(path, format!("malformed XML attribute: {e}")))?;
        out.insert(String::from_utf8_lossy(a.key.as_ref()).into_owned(), v.into_owned());
    }
    Ok(out)
}

/// The tiers and time slots of an .eaf file.
fn parse(path: &Path, text: &str) -> Result<(BTreeMap<String, i64>, Vec<Tier>), CoreError> {
    let mut rd = Reader::from_str(text);
    let mut slots = BTreeMap::new();
    let mut tiers: Vec<Tier> = Vec::new();
    let mut annotation: Option<(String, String, String)> = None;
    let mut in_value = false;
    let mut seen_root = false;
    loop {
        let ev = rd.read_event().map_err(|e| bad(path, format!("not an ELAN file (malformed XML at byte {}: {e})", rd.buffer_position())))?;
        match ev {
            Xml::Start(e) | Xml::Empty(e) if !seen_root => {
                if e.name().as_ref() != b"ANNOTATION_DOCUMENT" {
                    return Err(bad(path, "not an ELAN file (no ANNOTATION_DOCUMENT)"));
                }
                seen_root = true;
            }
            Xml::Start(ref e) | Xml::Empty(ref e) => match e.name().as_ref() {
                b"TIME_SLOT" => {
                    let a = attrs(e, path)?;
                    let id = a.get("TIME_SLOT_ID").cloned().ok_or_else(|| bad(path, "a TIME_SLOT without an id"))?;
                    // A slot without a time (unaligned) cannot place an event.
                    if let Some(t) = a.get("TIME_VALUE") {
                        slots.insert(id, t.parse::<i64>().map_err(|_| bad(path, format!("time slot {}: '{t}' is not milliseconds", a["TIME_SLOT_ID"])))?);
                    }
                }
                b"TIER" => {
                    let a = attrs(e, path)?;
                    tiers.push(Tier {
                        id: a.get("TIER_ID").cloned().unwrap_or_default(),
                        annotator: a.get("ANNOTATOR").cloned(),
                        participant: a.get("PARTICIPANT").cloned(),
                        parent: a.get("PARENT_REF").cloned(),
                        annotations: Vec::new(),
                    });
                }
                b"ALIGNABLE_ANNOTATION" => {
                    let a = attrs(e, path)?;
                    let get = |k: &str| a.get(k).cloned().ok_or_else(|| bad(path, format!("an annotation without {k}")));
                    annotation = Some((get("TIME_SLOT_REF1")?, get("TIME_SLOT_REF2")?, String::new()));
                }
                b"REF_ANNOTATION" => {
                    let tier = tiers.last().map(|t| t.id.clone()).unwrap_or_default();
                    return Err(bad(path, format!("tier '{tier}' has reference annotations (not time-aligned); auscope reads time-aligned AU tiers")));
                }
                b"ANNOTATION_VALUE" => in_value = matches!(ev, Xml::Start(_)),
                _ => {}
            },
            Xml::Text(t) if in_value => {
                if let Some(a) = &mut annotation {
                    a.2.push_str(&t.xml10_content().map_err(|e| bad(path, e))?);
                }
            }
            Xml::GeneralRef(r) if in_value => {
                let name = r.decode().map_err(|e| bad(path, e))?;
                let c = quick_xml::escape::unescape(&format!("&{name};")).map_err(|e| bad(path, e))?.into_owned();
                if let Some(a) = &mut annotation {
                    a.2.push_str(&c);
                }
            }
            Xml::End(e) => match e.name().as_ref() {
                b"ANNOTATION_VALUE" => in_value = false,
                b"ALIGNABLE_ANNOTATION" => {
                    if let (Some(a), Some(t)) = (annotation.take(), tiers.last_mut()) {
                        t.annotations.push(a);
                    }
                }
                _ => {}
            },
            Xml::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(bad(path, "not an ELAN file (empty)"));
    }
    Ok((slots, tiers))
}

/// What an import read.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub events: Vec<(String, EventSpan)>,
    pub tiers: usize,
}

/// Read the AU events of an .eaf file, checking everything first.
/// `frames`: the media's length, when known.
pub fn read(path: &Path, fps: f64, frames: Option<usize>) -> Result<Imported, CoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let (slots, tiers) = parse(path, &text)?;
    let time = |tier: &str, slot: &str| slots.get(slot).copied().ok_or_else(|| bad(path, format!("tier '{tier}': time slot {slot} is missing or has no time")));
    let origin = format!("eaf:{}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    let (au_tiers, apex_tiers): (Vec<&Tier>, Vec<&Tier>) = tiers.iter().partition(|t| t.parent.is_none());
    let mut au_count = 0;
    for t in &au_tiers {
        let mut words = t.id.split_whitespace();
        let au = words.next().unwrap_or_default().to_string();
        if crate::training::data::au_name(&au).is_none() {
            unknown.push(t.id.clone());
            continue;
        }
        au_count += 1;
        let rest: Vec<&str> = words.collect();
        let from_id_person = rest.last().and_then(|w| w.strip_prefix('p')).and_then(|n| n.parse::<u32>().ok());
        let person = t
            .participant
            .as_deref()
            .and_then(|p| p.strip_prefix("person ").and_then(|n| n.trim().parse().ok()))
            .or(from_id_person)
            .unwrap_or(0);
        let who = t.annotator.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| {
            let n = rest.len() - from_id_person.is_some() as usize;
            if n == 0 { "ELAN".to_string() } else { rest[..n].join(" ") }
        });
        let apex_of: Vec<(i64, i64)> = apex_tiers
            .iter()
            .filter(|a| a.parent.as_deref() == Some(&t.id))
            .flat_map(|a| a.annotations.iter().map(|(s, e, _)| Ok((time(&a.id, s)?, time(&a.id, e)?))))
            .collect::<Result<_, CoreError>>()?;
        let mut spans: Vec<EventSpan> = Vec::new();
        for (s, e, value) in &t.annotations {
            let (t0, t1) = (time(&t.id, s)?, time(&t.id, e)?);
            if t1 <= t0 {
                return Err(bad(path, format!("tier '{}': an annotation ends ({t1} ms) before it starts ({t0} ms)", t.id)));
            }
            let onset = frame_at(t0, fps);
            let offset = frame_at(t1, fps).saturating_sub(1).max(onset);
            let value = value.trim();
            let intensity = match value.chars().next() {
                None => None,
                Some(c @ 'A'..='E') if value.len() == 1 => Some(c as u8 - b'A' + 1),
                _ => return Err(bad(path, format!("tier '{}' at {t0} ms: '{value}' is not an intensity (A-E, or empty)", t.id))),
            };
            let apex = apex_of.iter().map(|&(a, _)| frame_at(a, fps)).find(|a| (onset..=offset).contains(a)).unwrap_or(onset + (offset - onset) / 2);
            let span = EventSpan { person, au: au.clone(), onset, apex, offset, intensity, origin: Some(origin.clone()) };
            if let Some(p) = span.problem(frames) {
                return Err(bad(path, format!("tier '{}': {p}", t.id)));
            }
            spans.push(span);
        }
        spans.sort();
        for w in spans.windows(2) {
            if w[1].onset <= w[0].offset {
                return Err(bad(path, format!("tier '{}': annotations {} and {} overlap (one AU of one person is one event at a time)", t.id, w[0].describe(), w[1].describe())));
            }
        }
        out.extend(spans.into_iter().map(|s| (who.clone(), s)));
    }
    for a in &apex_tiers {
        if !au_tiers.iter().any(|t| Some(&t.id) == a.parent.as_ref()) || unknown.contains(a.parent.as_ref().expect("a child tier")) {
            unknown.push(a.id.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(bad(
            path,
            format!(
                "tiers that are not AU tiers: {} (auscope reads tiers named by their AU, e.g. 'AU12 alice', and their apex child tiers); nothing was imported",
                unknown.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(Imported { events: out, tiers: au_count })
}

/// Import an .eaf file's events into `store` (all or nothing); a summary.
pub fn import(store: &mut Store, path: &Path, fps: f64, frames: Option<usize>) -> Result<String, CoreError> {
    let read = read(path, fps, frames)?;
    let n = store.put_events(&read.events, frames).map_err(|e| bad(path, e))?;
    let coders: std::collections::BTreeSet<&str> = read.events.iter().map(|(w, _)| w.as_str()).collect();
    Ok(format!("imported {n} events on {} AU tiers from {} ({})", read.tiers, path.display(), coders.into_iter().collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_then_import_loses_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("a.mp4.auscope")).expect("store");
        let mut a = EventSpan::new(0, "AU12", 10, 40);
        a.apex = 31;
        a.intensity = Some(4);
        let b = EventSpan::new(2, "AU04", 0, 0);
        let c = EventSpan::new(0, "AU12", 50, 52);
        store.put_events(&[("alice & co".into(), a.clone()), ("bob".into(), b.clone()), ("alice & co".into(), c.clone())], None).expect("put");
        let eaf = dir.path().join("out.eaf");
        assert_eq!(export(&store, None, 29.97, Some(&dir.path().join("a.mp4")), &eaf).expect("export"), 3);
        let back = read(&eaf, 29.97, Some(100)).expect("read");
        let strip = |v: Vec<(String, EventSpan)>| -> Vec<(String, EventSpan)> { v.into_iter().map(|(w, s)| (w, EventSpan { origin: None, ..s })).collect() };
        let mut want = vec![("alice & co".to_string(), a), ("alice & co".to_string(), c), ("bob".to_string(), b)];
        want.sort();
        let mut got = strip(back.events);
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let eaf = dir.path().join("x.eaf");
        let doc = |tiers: &str| {
            format!(
                "<?xml version=\"1.0\"?><ANNOTATION_DOCUMENT><HEADER TIME_UNITS=\"milliseconds\"/><TIME_ORDER>\
                 <TIME_SLOT TIME_SLOT_ID=\"t1\" TIME_VALUE=\"0\"/><TIME_SLOT TIME_SLOT_ID=\"t2\" TIME_VALUE=\"1000\"/>\
                 <TIME_SLOT TIME_SLOT_ID=\"t3\" TIME_VALUE=\"500\"/><TIME_SLOT TIME_SLOT_ID=\"t4\" TIME_VALUE=\"9000\"/></TIME_ORDER>{tiers}</ANNOTATION_DOCUMENT>"
            )
        };
        let ann = |a: &str, b: &str, v: &str| format!("<ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID=\"x\" TIME_SLOT_REF1=\"{a}\" TIME_SLOT_REF2=\"{b}\"><ANNOTATION_VALUE>{v}</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION>");
        let cases = [
            (doc(&format!("<TIER TIER_ID=\"speech\">{}</TIER>", ann("t1", "t2", "hello"))), "not AU tiers: 'speech'"),
            (doc(&format!("<TIER TIER_ID=\"AU12 ann\">{}{}</TIER>", ann("t1", "t2", "B"), ann("t3", "t2", ""))), "overlap"),
            (doc(&format!("<TIER TIER_ID=\"AU12 ann\">{}</TIER>", ann("t3", "t4", ""))), "past the media's last frame"),
            (doc(&format!("<TIER TIER_ID=\"AU12 ann\">{}</TIER>", ann("t1", "t9", ""))), "time slot t9 is missing"),
            (doc(&format!("<TIER TIER_ID=\"AU12 ann\">{}</TIER>", ann("t1", "t2", "strong"))), "not an intensity"),
            ("<html><body>no</body></html>".to_string(), "not an ELAN file"),
            ("<ANNOTATION_DOCUMENT><TIER".to_string(), "not an ELAN file"),
        ];
        for (text, want) in cases {
            std::fs::write(&eaf, text).expect("write");
            let err = read(&eaf, 30.0, Some(60)).expect_err(want).to_string();
            assert!(err.contains("x.eaf") && err.contains(want), "{want}: {err}");
        }
    }
}
