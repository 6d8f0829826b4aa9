//! e2e: spaces, roles and users over real HTTP against a whole kubefoundry (simulated cluster,
//! controller, façade): the cf CLI's create-org/create-space/set-space-role request sequences,
//! who sees and may change what (an authorization matrix across users and roles), CF's errors
//! for bad input, and race-free uniqueness of space names and role grants.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kubefoundry_e2e::{
    cf::{CfStack, Resp},
    eventually,
};
use serde_json::{Value, json};

/// The cf CLI's role body: the user by username (Kubernetes mode sends no origin).
fn role_body(type_: &str, user: &str, scope: &str, scope_guid: &str) -> Value {
    json!({
        "type": type_,
        "relationships": {
            scope: {"data": {"guid": scope_guid}},
            "user": {"data": {"username": user}},
        },
    })
}

/// Matches the cf CLI's `RoleAlreadyExistsError` regex `User '.*' already has '.*' role.*`.
fn is_role_exists(r: &Resp) -> bool {
    let d = r.detail();
    r.status == 422 && d.starts_with("User '") && d.contains("' already has '") && d.contains("' role")
}

async fn create_org(s: &CfStack, token: &str, name: &str) -> String {
    let r = s
        .call(
            "POST",
            "/v3/organizations",
            Some(token),
            Some(json!({"name": name, "suspended": false})),
        )
        .await;
    assert_eq!(r.status, 201, "create org {name}: {:?}", r.body);
    r.guid()
}

async fn create_space(s: &CfStack, token: &str, name: &str, org: &str) -> Resp {
    s.call(
        "POST",
        "/v3/spaces",
        Some(token),
        Some(json!({"name": name, "relationships": {"organization": {"data": {"guid": org}}}})),
    )
    .await
}

async fn grant(s: &CfStack, token: &str, type_: &str, user: &str, scope: &str, scope_guid: &str) -> Resp {
    s.call(
        "POST",
        "/v3/roles",
        Some(token),
        Some(role_body(type_, user, scope, scope_guid)),
    )
    .await
}

/// `cf create-org`, `cf create-space` and `cf set-space-role`, request by request as the cf
/// CLI v8 sends them (cf-cli-wire §3), then the resources those requests leave behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_cli_org_space_and_role_sequences() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let me = s.call("GET", "/whoami", Some(&admin), None).await.body["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // cf create-org o1 (twice: the second is "already exists", which the CLI treats as OK).
    let org = create_org(&s, &admin, "o1").await;
    let again = s
        .call(
            "POST",
            "/v3/organizations",
            Some(&admin),
            Some(json!({"name": "o1", "suspended": false})),
        )
        .await;
    assert_eq!(
        (again.status, again.detail()),
        (422, "Organization 'o1' already exists.".to_owned())
    );

    // cf target -o o1 → cf create-space s1: POST space, then the four role POSTs.
    let found = s
        .call(
            "GET",
            "/v3/organizations?names=o1&page=1&per_page=1",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(found.guids(), vec![org.clone()]);
    let r = create_space(&s, &admin, "s1", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let space = r.guid();
    assert_eq!(r.body["name"], "s1");
    assert_eq!(r.body["relationships"]["organization"]["data"]["guid"], org);
    assert_eq!(
        r.body["links"]["self"]["href"],
        format!("{}/v3/spaces/{space}", s.base)
    );
    assert_eq!(r.body["links"]["apply_manifest"]["method"], "POST");
    // The create waited for the space's Namespace: the next request can use it at once.
    s.wait_namespace(&space).await;

    let r = grant(&s, &admin, "organization_user", &me, "organization", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["type"], "organization_user");
    assert_eq!(r.body["relationships"]["user"]["data"]["guid"], me.as_str());
    assert_eq!(r.body["relationships"]["organization"]["data"]["guid"], org);
    assert_eq!(r.body["relationships"]["space"]["data"], Value::Null);
    let r = grant(&s, &admin, "space_manager", &me, "space", &space).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["relationships"]["space"]["data"]["guid"], space);
    assert_eq!(r.body["relationships"]["organization"]["data"], Value::Null);
    let r = grant(&s, &admin, "organization_user", &me, "organization", &org).await;
    assert!(is_role_exists(&r), "{:?}", r.body);
    assert_eq!(
        r.detail(),
        format!("User '{me}' already has 'organization_user' role in organization 'o1'.")
    );
    let r = grant(&s, &admin, "space_developer", &me, "space", &space).await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // cf create-space s1 again: CC's "Name must be unique per organization".
    let r = create_space(&s, &admin, "s1", &org).await;
    assert_eq!(r.status, 422);
    assert!(
        r.detail().contains("Name must be unique per organization"),
        "{:?}",
        r.body
    );

    // cf set-space-role alice o1 s1 SpaceDeveloper: org lookup, space lookup, org_user, role.
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces?names=s1&organization_guids={org}&page=1&per_page=1"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![space.clone()]);
    for round in 0..2 {
        let r = grant(&s, &admin, "organization_user", "alice", "organization", &org).await;
        assert_eq!(r.status == 201, round == 0, "{:?}", r.body);
        assert!(round == 0 || is_role_exists(&r));
        let r = grant(&s, &admin, "space_developer", "alice", "space", &space).await;
        assert_eq!(r.status == 201, round == 0, "{:?}", r.body);
        assert!(round == 0 || is_role_exists(&r));
        if round == 1 {
            assert_eq!(
                r.detail(),
                "User 'alice' already has 'space_developer' role in space 's1'."
            );
        }
    }

    // A space role needs a role in the org first.
    let r = grant(&s, &admin, "space_auditor", "bob", "space", &space).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.detail(),
        "Users cannot be assigned roles in a space if they do not have a role in that space's organization."
    );

    // alice now sees the org, the space and the roles (cf orgs, cf spaces).
    let alice = CfStack::token("alice");
    let r = s
        .call("GET", "/v3/organizations?order_by=name", Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec![org.clone()]);
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces?order_by=name&organization_guids={org}&include=organization"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![space.clone()]);
    assert_eq!(r.body["included"]["organizations"][0]["guid"], org);
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces/{space}?include=organization"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["name"], "s1");
    assert_eq!(r.body["included"]["organizations"][0]["name"], "o1");
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces/{space}?include=apps"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((r.status, r.title()), (400, "CF-BadQueryParameter".to_owned()));
    let r = s
        .call(
            "GET",
            "/v3/roles?user_guids=alice&include=user,space,organization",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["included"]["users"][0]["guid"], "alice");
    assert_eq!(r.body["included"]["users"][0]["username"], "alice");
    assert_eq!(r.body["included"]["spaces"][0]["guid"], space);
    assert_eq!(r.body["included"]["organizations"][0]["guid"], org);
    let r = s
        .call(
            "GET",
            &format!("/v3/roles?types=space_developer&space_guids={space}"),
            Some(&alice),
            None,
        )
        .await;
    let users: Vec<&str> = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["relationships"]["user"]["data"]["guid"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 2);
    assert!(users.contains(&"alice") && users.contains(&me.as_str()));

    // Users: the ones visible roles name, and the caller themself.
    let r = s
        .call("GET", "/v3/users?order_by=created_at", Some(&alice), None)
        .await;
    let names = r.guids();
    assert!(
        names.contains(&"alice".to_owned()) && names.contains(&me),
        "{names:?}"
    );
    let r = s
        .call("GET", "/v3/users?usernames=alice", Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec!["alice".to_owned()]);
    assert_eq!(r.body["resources"][0]["origin"], "");
    let r = s.call("GET", "/v3/users/nobody", Some(&alice), None).await;
    assert_eq!((r.status, r.detail()), (404, "User not found".to_owned()));
    let r = s
        .call("GET", "/v3/users/erin", Some(&CfStack::token("erin")), None)
        .await;
    assert_eq!((r.status, r.body["guid"].clone()), (200, json!("erin")));

    // Space features: ssh follows spec.allowSsh.
    let r = s
        .call("GET", &format!("/v3/spaces/{space}/features"), Some(&alice), None)
        .await;
    assert_eq!(r.body["resources"][0]["name"], "ssh");
    assert_eq!(r.body["resources"][0]["enabled"], true);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/spaces/{space}/features/ssh"),
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((r.status, r.body["enabled"].clone()), (200, json!(false)));
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces/{space}/features/ssh"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["enabled"], false);
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces/{space}/features/warp"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "Feature not found".to_owned()));

    // Rename claims the new name and releases the old one.
    let other = create_space(&s, &admin, "s2", &org).await;
    assert_eq!(other.status, 201);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/spaces/{space}"),
            Some(&admin),
            Some(json!({"name": "s2"})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/spaces/{space}"),
            Some(&admin),
            Some(json!({"name": "renamed", "metadata": {"labels": {"tier": "gold"}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(r.body["metadata"]["labels"]["tier"], "gold");
    let r = s
        .call("GET", "/v3/spaces?label_selector=tier%3Dgold", Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec![space.clone()]);
    let r = create_space(&s, &admin, "s1", &org).await;
    assert_eq!(r.status, 201, "the old name is free again: {:?}", r.body);

    // Revoking: a role, then a user (every role of theirs the caller sees), then a space.
    let r = s
        .call(
            "GET",
            &format!("/v3/roles?user_guids=alice&types=space_developer&space_guids={space}"),
            Some(&admin),
            None,
        )
        .await;
    let role = r.guids().pop().unwrap();
    let r = s
        .call(
            "GET",
            &format!("/v3/roles/{role}?include=user,space"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["type"], "space_developer");
    assert_eq!(r.body["included"]["users"][0]["guid"], "alice");
    assert_eq!(r.body["included"]["spaces"][0]["guid"], space);
    let r = s
        .call("DELETE", &format!("/v3/roles/{role}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202);
    let job = s.wait_job(&r.location().unwrap(), &admin).await;
    assert_eq!(job["state"], "COMPLETE");
    assert_eq!(job["operation"], "role.delete");
    let r = s
        .call("GET", &format!("/v3/roles/{role}"), Some(&admin), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Role not found".to_owned()));

    let r = s.call("DELETE", "/v3/users/alice", Some(&admin), None).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = s.wait_job(&r.location().unwrap(), &admin).await;
    assert_eq!(job["state"], "COMPLETE");
    let r = s
        .call("GET", "/v3/roles?user_guids=alice", Some(&admin), None)
        .await;
    assert!(r.guids().is_empty(), "{:?}", r.body);
    let r = s.call("GET", "/v3/spaces", Some(&alice), None).await;
    assert!(r.guids().is_empty());

    let r = s
        .call("DELETE", &format!("/v3/spaces/{space}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202);
    let job = s.wait_job(&r.location().unwrap(), &admin).await;
    assert_eq!(
        (job["state"].clone(), job["operation"].clone()),
        (json!("COMPLETE"), json!("space.delete"))
    );
    let r = s
        .call("GET", &format!("/v3/spaces/{space}"), Some(&admin), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Space not found".to_owned()));
}

/// Who sees and may change what: a space developer sees only their space; an org auditor
/// reads the org but may not change it; an org manager creates spaces (and grants roles) in
/// their own org only; nobody else grants roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorization_matrix() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(CfStack::token);
    let org = create_org(&s, &admin, "org").await;
    let elsewhere = create_org(&s, &admin, "elsewhere").await;
    let a = create_space(&s, &admin, "a", &org).await.guid();
    let b = create_space(&s, &admin, "b", &org).await.guid();

    // alice: space developer in A; dave: space developer in B.
    for (user, space) in [("alice", &a), ("dave", &b)] {
        let r = grant(&s, &admin, "organization_user", user, "organization", &org).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let r = grant(&s, &admin, "space_developer", user, "space", space).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let dave_in_b = s
        .call(
            "GET",
            &format!("/v3/roles?user_guids=dave&space_guids={b}"),
            Some(&admin),
            None,
        )
        .await;
    let dave_in_b = dave_in_b.guids().pop().unwrap();

    // alice sees A and nothing of B.
    let r = s.call("GET", "/v3/spaces", Some(&alice), None).await;
    assert_eq!(r.guids(), vec![a.clone()]);
    let r = s
        .call("GET", &format!("/v3/spaces/{b}"), Some(&alice), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Space not found".to_owned()));
    let r = s.call("GET", "/v3/roles", Some(&alice), None).await;
    assert_eq!(r.status, 200);
    for role in r.body["resources"].as_array().unwrap() {
        assert_ne!(role["relationships"]["space"]["data"]["guid"], json!(b), "{role}");
    }
    let r = s
        .call("GET", &format!("/v3/roles?space_guids={b}"), Some(&alice), None)
        .await;
    assert!(r.guids().is_empty());
    let r = s
        .call("GET", &format!("/v3/roles/{dave_in_b}"), Some(&alice), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Role not found".to_owned()));
    let r = s
        .call("GET", &format!("/v3/spaces/{b}/features"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 404);
    // … and may not rename A (space developers do not manage spaces), nor grant roles.
    let r = s
        .call(
            "PATCH",
            &format!("/v3/spaces/{a}"),
            Some(&alice),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!((r.status, r.title()), (403, "CF-NotAuthorized".to_owned()));
    let r = grant(&s, &alice, "space_developer", "erin", "space", &a).await;
    assert_eq!(r.status, 422, "erin has no org role yet: {:?}", r.body);
    let r = grant(&s, &alice, "organization_user", "erin", "organization", &org).await;
    assert_eq!((r.status, r.title()), (403, "CF-NotAuthorized".to_owned()));
    let r = s
        .call("DELETE", &format!("/v3/spaces/{a}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 403);

    // bob: org auditor reads the org but may not change it.
    let r = grant(&s, &admin, "organization_auditor", "bob", "organization", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s
        .call("GET", &format!("/v3/organizations/{org}"), Some(&bob), None)
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/organizations/{org}"),
            Some(&bob),
            Some(json!({"name": "audited"})),
        )
        .await;
    assert_eq!((r.status, r.title()), (403, "CF-NotAuthorized".to_owned()));
    let r = create_space(&s, &bob, "by-auditor", &org).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = s.call("GET", "/v3/organizations/x", Some(&bob), None).await;
    assert_eq!(r.status, 404);

    // carol: org manager of `org` creates spaces there (the cf CLI's create-space sequence,
    // granting herself roles in the new space at once), but not in `elsewhere`.
    let r = grant(&s, &admin, "organization_manager", "carol", "organization", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = create_space(&s, &carol, "c", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let c = r.guid();
    let r = grant(&s, &carol, "organization_user", "carol", "organization", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = grant(&s, &carol, "space_manager", "carol", "space", &c).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = grant(&s, &carol, "organization_user", "carol", "organization", &org).await;
    assert!(is_role_exists(&r), "{:?}", r.body);
    let r = grant(&s, &carol, "space_developer", "carol", "space", &c).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = create_space(&s, &carol, "c", &elsewhere).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.detail(),
        "Invalid organization. Ensure the organization exists and you have access to it."
    );
    // An org manager sees every space of the org, and grants roles in it.
    let r = s
        .call("GET", "/v3/spaces?order_by=name", Some(&carol), None)
        .await;
    let names: Vec<&str> = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    let r = grant(&s, &carol, "space_auditor", "alice", "space", &b).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s
        .call("GET", "/v3/spaces?order_by=name", Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec![a.clone(), b.clone()]);

    // cf rename-space: a space manager may (once the controller has bound its Role in the
    // org namespace), a space developer may not.
    let erin = CfStack::token("erin");
    let r = grant(&s, &admin, "organization_user", "erin", "organization", &org).await;
    assert!(r.status == 201 || is_role_exists(&r), "{:?}", r.body);
    let r = grant(&s, &admin, "space_manager", "erin", "space", &a).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let rename = |who: String, name: &'static str| {
        let s = &s;
        let a = a.clone();
        async move {
            s.call(
                "PATCH",
                &format!("/v3/spaces/{a}"),
                Some(&who),
                Some(json!({"name": name})),
            )
            .await
        }
    };
    let renamed = eventually("the space manager's rename", Duration::from_secs(20), || async {
        let r = rename(erin.clone(), "a2").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(renamed.body["name"], "a2");
    let r = rename(alice.clone(), "a3").await;
    assert_eq!((r.status, r.title()), (403, "CF-NotAuthorized".to_owned()));
    let r = rename(erin.clone(), "a").await;
    assert_eq!((r.status, r.body["name"].clone()), (200, json!("a")));

    // Users: only admins create them or change their metadata.
    let r = s
        .call("POST", "/v3/users", Some(&alice), Some(json!({"guid": "newbie"})))
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .call(
            "POST",
            "/v3/users",
            Some(&admin),
            Some(json!({"guid": "newbie", "metadata": {"labels": {"team": "x"}}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["guid"], "newbie");
    assert_eq!(r.body["metadata"]["labels"]["team"], "x");
    let r = s
        .call("POST", "/v3/users", Some(&admin), Some(json!({"guid": "alice"})))
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (422, "User with guid 'alice' already exists.".to_owned())
    );
    let r = s
        .call(
            "PATCH",
            "/v3/users/dave",
            Some(&alice),
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .call(
            "PATCH",
            "/v3/users/dave",
            Some(&admin),
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["metadata"]["labels"]["x"].clone()),
        (200, json!("y"))
    );
    let r = s
        .call("PATCH", "/v3/users/dave", Some(&dave), Some(json!({"bogus": 1})))
        .await;
    assert_eq!(r.status, 422);
}

/// CF's errors for malformed bodies, unknown fields, bad query parameters and bad
/// relationships.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_and_races() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let org = create_org(&s, &admin, "o").await;

    let r = s
        .raw(
            "POST",
            "/v3/spaces",
            Some(&admin),
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.title()), (400, "CF-MessageParseError".to_owned()));
    let r = s
        .call(
            "POST",
            "/v3/spaces",
            Some(&admin),
            Some(json!({"name": "x", "colour": "red", "relationships": {"organization": {"data": {"guid": org}}}})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("colour"), "{:?}", r.body);
    let r = s
        .call("POST", "/v3/spaces", Some(&admin), Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, 422, "relationships are required: {:?}", r.body);
    let r = create_space(&s, &admin, "", &org).await;
    assert_eq!(r.status, 422);
    let r = create_space(&s, &admin, "x", "no-such-org").await;
    assert_eq!(r.status, 422);
    for path in [
        "/v3/spaces?colour=red",
        "/v3/spaces?order_by=colour",
        "/v3/spaces?include=apps",
        "/v3/roles?colour=red",
        "/v3/roles?per_page=0",
        "/v3/users?colour=red",
    ] {
        let r = s.call("GET", path, Some(&admin), None).await;
        assert_eq!(
            (r.status, r.title()),
            (400, "CF-BadQueryParameter".to_owned()),
            "{path}"
        );
    }
    let r = s
        .call(
            "POST",
            "/v3/roles",
            Some(&admin),
            Some(role_body("wizard", "alice", "organization", &org)),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .call(
            "POST",
            "/v3/roles",
            Some(&admin),
            Some(role_body("space_developer", "alice", "organization", &org)),
        )
        .await;
    assert_eq!(r.status, 422, "a space role needs a space: {:?}", r.body);
    let r = s
        .call(
            "POST",
            "/v3/roles",
            Some(&admin),
            Some(json!({"type": "organization_user", "relationships": {"user": {"data": {"guid": "a", "username": "a"}}, "organization": {"data": {"guid": org}}}})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .call(
            "POST",
            "/v3/roles",
            Some(&admin),
            Some(role_body(
                "organization_user",
                "alice",
                "organization",
                "no-such-org",
            )),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().starts_with("Invalid organization."), "{:?}", r.body);
    let r = s
        .call(
            "PATCH",
            "/v3/spaces/no-such-space",
            Some(&admin),
            Some(json!({"name": "y"})),
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "Space not found".to_owned()));

    // Concurrent creates of one space name: exactly one 201.
    let results =
        futures::future::join_all((0..6).map(|_| create_space(&s, &admin, "contested", &org))).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 422);
        assert!(r.detail().contains("Name must be unique per organization"));
    }
    let r = s
        .call(
            "GET",
            &format!("/v3/spaces?names=contested&organization_guids={org}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.guids().len(), 1);

    // Concurrent grants of one role: exactly one 201, the rest "already has".
    let results = futures::future::join_all(
        (0..6).map(|_| grant(&s, &admin, "organization_auditor", "bob", "organization", &org)),
    )
    .await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 1);
    assert!(results.iter().filter(|r| r.status != 201).all(is_role_exists));
    let r = s
        .call(
            "GET",
            "/v3/roles?user_guids=bob&types=organization_auditor",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.guids().len(), 1);
}

/// Each caller's access is cached, yet a role change is seen by the very next request: the
/// façade answers a role's POST and DELETE only once its cache holds the change, and the
/// cached access is dropped when the role cache changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_changes_are_seen_by_the_next_request() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let alice = CfStack::token("alice");
    let (org, space) = s.org_and_space("o-next", "s-next").await;
    let space_path = format!("/v3/spaces/{space}");

    // alice's access is computed (and cached) before any grant: she sees nothing.
    let r = s.call("GET", &space_path, Some(&alice), None).await;
    assert_eq!((r.status, r.detail()), (404, "Space not found".to_owned()));
    let r = s.call("GET", "/v3/organizations", Some(&alice), None).await;
    assert!(r.guids().is_empty(), "{:?}", r.body);

    let r = grant(&s, &admin, "organization_user", "alice", "organization", &org).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s.call("GET", "/v3/organizations", Some(&alice), None).await;
    assert_eq!(r.guids(), vec![org.clone()]);
    let r = s.call("GET", &space_path, Some(&alice), None).await;
    assert_eq!(r.status, 404, "an org user does not see the org's spaces");

    let r = grant(&s, &admin, "space_developer", "alice", "space", &space).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let role = r.guid();
    let r = s.call("GET", &space_path, Some(&alice), None).await;
    assert_eq!(r.status, 200, "granted: {:?}", r.body);
    let r = s.call("GET", "/v3/spaces", Some(&alice), None).await;
    assert_eq!(r.guids(), vec![space.clone()]);

    // No waiting for the delete job: the role stops granting as soon as DELETE is answered.
    let r = s
        .call("DELETE", &format!("/v3/roles/{role}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let r = s.call("GET", &space_path, Some(&alice), None).await;
    assert_eq!((r.status, r.detail()), (404, "Space not found".to_owned()));
    let r = s.call("GET", "/v3/spaces", Some(&alice), None).await;
    assert!(r.guids().is_empty(), "{:?}", r.body);
    let r = s.call("GET", "/v3/organizations", Some(&alice), None).await;
    assert_eq!(r.guids(), vec![org]);
}
