//! The markdown plan: the body of the pull-request comment (UX.md,
//! DECISIONS 20). A hidden marker lets the forge find and update the same
//! comment; destructive and disruptive changes are called out before the
//! per-app details, which are collapsed.

use super::text::{Line, app_lines, marker, render, shown};
use super::{Header, app_phrase, destructive_line, short_rev, totals_line};
use crate::plan::{AppPlan, AppStatus, Plan, Risk};

/// Hidden marker identifying a Kompox plan comment.
pub const MARKER: &str = "<!-- kompox-plan -->";

/// Renders the plan as a markdown comment body.
pub fn markdown(plan: &Plan, header: &Header) -> String {
    let s = &plan.summary;
    let c = &s.counts;
    let rev = header
        .revision
        .as_deref()
        .map_or("the working tree".to_string(), |r| {
            format!("`{}`", short_rev(r))
        });
    let mut out = String::new();
    out.push_str(MARKER);
    out.push('\n');
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
        out.push_str(&format!(
            "<details{open}><summary><b>{}</b> <code>{}</code>: {}</summary>\n\n",
            html(&app.app_name),
            html(&app.app_id.to_string()),
            html(&app_phrase(app))
        ));
        let lang = if matches!(app.status, AppStatus::Failed(_)) && !app.changes.iter().any(shown) {
            "text"
        } else {
            "diff"
        };
        out.push_str(&fenced(lang, &body));
        out.push_str("\n</details>\n\n");
    }
    for f in &plan.failed_files {
        out.push_str(&format!(
            "<details open><summary>app file <code>{}</code>: failed to load</summary>\n\n",
            html(&f.path)
        ));
        let lines: Vec<Line> = f
            .errors
            .iter()
            .map(|e| vec![(super::text::Style::Plain, e.to_string())])
            .collect();
        out.push_str(&fenced("text", &lines));
        out.push_str("\n</details>\n\n");
    }
    out.push_str(&totals_line(c));
    out.push('\n');
    out
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
fn fenced(lang: &str, lines: &[Line]) -> String {
    let body: Vec<String> = lines.iter().map(|l| render(l, false)).collect();
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
    fenced(lang, lines)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
