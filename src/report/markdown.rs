//! The markdown plan: the body of the pull-request comment (UX.md,
//! DECISIONS 20). A hidden marker lets the forge find and update the same
//! comment; destructive and disruptive changes are called out before the
//! per-app details, which are collapsed.

#[cfg(test)]
use super::text::Line;
use super::text::{app_lines, marker, render, shown};
use super::{Header, app_phrase, destructive_line, short_rev, totals_line};
use crate::plan::{AppPlan, AppStatus, Plan, Risk};

/// Hidden marker identifying a Kompox plan comment.
pub const MARKER: &str = "<!-- kompox-plan -->";

/// Renders the plan as a markdown comment body.
pub fn markdown(plan: &Plan, header: &Header) -> String {
    let parts = markdown_parts(plan, header);
    let mut out = String::new();
    out.push_str(MARKER);
    out.push('\n');
    out.push_str(&parts.head);
    for d in &parts.details {
        out.push_str(&d.render(d.lines.len()));
    }
    out.push_str(&parts.footer);
    out
}

/// The markdown plan in pieces, so a pull-request comment can be split or
/// trimmed at block boundaries (GitHub refuses comments over 65,536
/// characters) without cutting a table or a code fence in half.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkdownParts {
    /// Title, summary table, destructive/disruptive call-outs and notes.
    pub head: String,
    /// One collapsed block per app or failed file, in plan order.
    pub details: Vec<Details>,
    /// The totals line.
    pub footer: String,
}

/// One `<details>` block: an app's text plan inside a code fence.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    /// The app's (or file's) name, for "details omitted" notes.
    pub name: String,
    /// `<details…><summary>…</summary>`.
    pub summary: String,
    pub lang: &'static str,
    pub lines: Vec<String>,
}

impl Details {
    /// The block with at most `keep` of its lines; a cut block says how
    /// many lines it left out and where to see them.
    pub fn render(&self, keep: usize) -> String {
        let keep = keep.min(self.lines.len());
        let mut body: Vec<String> = self.lines[..keep].to_vec();
        let cut = self.lines.len() - keep;
        if cut > 0 {
            body.push(format!(
                "… {cut} more line{} not shown (comment size limit); run `kompoxops plan` for the full plan",
                if cut == 1 { "" } else { "s" }
            ));
        }
        format!(
            "{}\n\n{}\n</details>\n\n",
            self.summary,
            fenced_text(self.lang, &body)
        )
    }
}

/// Renders the plan as markdown pieces (see [`MarkdownParts`]).
pub fn markdown_parts(plan: &Plan, header: &Header) -> MarkdownParts {
    let s = &plan.summary;
    let c = &s.counts;
    let rev = header
        .revision
        .as_deref()
        .map_or("the working tree".to_string(), |r| {
            format!("`{}`", short_rev(r))
        });
    let mut out = String::new();
    let failed = s.apps_failed + plan.failed_files.len();
    let mut title = format!(
        "### Kompox plan for {rev}: {} changed, {} disruptive, {} destructive",
        plural(s.apps_changed, "app", "apps"),
        c.disruptive,
        c.destructive
    );
    if failed > 0 {
        title.push_str(&format!(", {failed} failed"));
    }
    out.push_str(&title);
    out.push_str("\n\n");
    out.push_str(&format!(
        "Workspace `{}` · live: {}\n\n",
        header.workspace,
        header.live.describe()
    ));

    if !plan.apps.is_empty() {
        out.push_str("| app | cluster | create | update | replace | prune | destroy | risk |\n");
        out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
        for app in &plan.apps {
            let k = app.counts();
            let nums = if matches!(app.status, AppStatus::Failed(_)) {
                "– | – | – | – | –".to_string()
            } else {
                format!(
                    "{} | {} | {} | {} | {}",
                    k.create, k.update, k.replace, k.prune, k.destroy
                )
            };
            out.push_str(&format!(
                "| {} | {} | {nums} | {} |\n",
                cell(&app.app_name),
                cell(app.cluster_name()),
                risk_cell(app)
            ));
        }
        out.push('\n');
    }

    out.push_str(&format!("**{}**\n\n", destructive_line(c)));
    for (risk, title) in [
        (Risk::Destructive, "Destructive changes"),
        (Risk::Disruptive, "Disruptive changes"),
    ] {
        let items: Vec<String> = plan
            .apps
            .iter()
            .flat_map(|a| {
                a.changes
                    .iter()
                    .filter(move |ch| ch.is_change() && ch.risk == risk)
                    .map(move |ch| {
                        let (m, _) = marker(ch);
                        format!(
                            "- {}: `{m} {} {}` {} — {}",
                            a.app_name,
                            ch.target.kind_label(),
                            ch.target.name_label(),
                            ch.action.as_str(),
                            ch.reasons.join("; ")
                        )
                    })
            })
            .collect();
        if !items.is_empty() {
            out.push_str(&format!("**{title}:**\n\n{}\n\n", items.join("\n")));
        }
    }
    for n in &plan.notes {
        out.push_str(&format!("> **Note:** {n}\n\n"));
    }

    let mut details = Vec::new();
    for app in &plan.apps {
        let body = app_lines(app, true);
        if body.is_empty() {
            continue;
        }
        let open = if matches!(app.status, AppStatus::Failed(_)) {
            " open"
        } else {
            ""
        };
        let lang = if matches!(app.status, AppStatus::Failed(_)) && !app.changes.iter().any(shown) {
            "text"
        } else {
            "diff"
        };
        details.push(Details {
            name: app.app_name.clone(),
            summary: format!(
                "<details{open}><summary><b>{}</b> <code>{}</code>: {}</summary>",
                html(&app.app_name),
                html(&app.app_id.to_string()),
                html(&app_phrase(app))
            ),
            lang,
            lines: body.iter().map(|l| render(l, false)).collect(),
        });
    }
    for f in &plan.failed_files {
        details.push(Details {
            name: f.path.clone(),
            summary: format!(
                "<details open><summary>app file <code>{}</code>: failed to load</summary>",
                html(&f.path)
            ),
            lang: "text",
            lines: f.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    MarkdownParts {
        head: out,
        details,
        footer: format!("{}\n", totals_line(c)),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn risk_cell(app: &AppPlan) -> String {
    let risk = match app.max_risk() {
        Some(Risk::Destructive) => "**Destructive**",
        Some(Risk::Disruptive) => "**Disruptive**",
        Some(Risk::Safe) => "Safe",
        None => "no changes",
    };
    match &app.status {
        AppStatus::Failed(_) => "**failed**".into(),
        AppStatus::Removed => format!("{risk} (removed from Git)"),
        AppStatus::Planned => risk.into(),
    }
}

/// A code block whose fence is longer than any backtick run inside.
fn fenced_text(lang: &str, body: &[String]) -> String {
    let longest = body
        .iter()
        .flat_map(|l| l.split(|c| c != '`').map(str::len))
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{}\n{fence}\n", body.join("\n"))
}

#[cfg(test)]
pub(super) fn fenced_for_test(lang: &str, lines: &[Line]) -> String {
    let body: Vec<String> = lines.iter().map(|l| render(l, false)).collect();
    fenced_text(lang, &body)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
