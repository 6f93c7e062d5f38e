-- The demo application's database: a small but realistic schema (users, projects, chats, messages, sessions)
-- with generated rows, so exports and restore checks have real data to work with.
create table users (
    id          bigint generated always as identity primary key,
    email       text not null unique,
    name        text not null,
    created_at  timestamptz not null default now()
);
create table projects (
    id          bigint generated always as identity primary key,
    owner_id    bigint not null references users(id),
    title       text not null,
    created_at  timestamptz not null default now()
);
create table chats (
    id          bigint generated always as identity primary key,
    project_id  bigint not null references projects(id),
    user_id     bigint not null references users(id),
    title       text not null,
    created_at  timestamptz not null default now()
);
create table messages (
    id          bigint generated always as identity primary key,
    chat_id     bigint not null references chats(id),
    role        text not null check (role in ('user', 'assistant', 'system')),
    body        text not null,
    created_at  timestamptz not null default now()
);
create index messages_chat_id_idx on messages(chat_id);
create table sessions (
    id          uuid primary key default gen_random_uuid(),
    user_id     bigint not null references users(id),
    expires_at  timestamptz not null,
    user_agent  text
);

insert into users (email, name, created_at)
select format('user%s@example.com', g), format('User %s', g), now() - make_interval(days => g % 365)
from generate_series(1, 250) g;

insert into projects (owner_id, title, created_at)
select 1 + (g * 7) % 250, format('Project %s', g), now() - make_interval(days => g % 200)
from generate_series(1, 60) g;

insert into chats (project_id, user_id, title, created_at)
select 1 + g % 60, 1 + (g * 13) % 250, format('Chat about topic %s', g), now() - make_interval(hours => g)
from generate_series(1, 1200) g;

insert into messages (chat_id, role, body, created_at)
select 1 + g % 1200,
       (array['user', 'assistant', 'system'])[1 + g % 3],
       repeat(md5(g::text), 1 + g % 4),
       now() - make_interval(mins => g)
from generate_series(1, 24000) g;

insert into sessions (user_id, expires_at, user_agent)
select 1 + g % 250, now() + make_interval(days => 1 + g % 30), 'Mozilla/5.0 (demo)'
from generate_series(1, 600) g;

analyze;
