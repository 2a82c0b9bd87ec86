//! Every string the pages show, in Russian and English, in one table.

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Русский.
    Ru,
    /// English.
    En,
}

impl Lang {
    /// The code in `?lang=` and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    /// `ru` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of Russian or English an `Accept-Language` header names
    /// (quality values are ignored: browsers list in preference order);
    /// Russian when it names neither, as the programme's shops are.
    pub fn from_accept(header: &str) -> Lang {
        for part in header.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary) {
                return l;
            }
        }
        Lang::Ru
    }
}

/// A string of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum T {
    Title,
    Login,
    Name,
    Password,
    LogOut,
    BadLogin,
    TooMany,
    Customers,
    Search,
    SearchHint,
    NoResults,
    Next,
    Account,
    Status,
    Phone,
    Email,
    Cards,
    Balance,
    Tier,
    Lots,
    Remaining,
    Burns,
    Never,
    History,
    Kind,
    When,
    Where,
    Reason,
    Operator,
    Amount,
    Block,
    Unblock,
    ManualPoints,
    Accrue,
    Deduct,
    Note,
    Expires,
    Submit,
    Done,
    Audit,
    ExportCsv,
    Action,
    Target,
    Detail,
    From,
    Forbidden,
    OverLimit,
    NotFound,
    ReasonGoodwill,
    ReasonComplaint,
    ReasonCorrection,
    ReasonPromotion,
    ReasonOther,
    BadDate,
    Failed,
    // Card actions, tier progress, the programme page (bo-cards).
    ConfirmFound,
    Reactivate,
    ReportLost,
    RegenerateSecret,
    Replace,
    SecretAgain,
    SecretOnce,
    ReplaceHelp,
    NewCardNumber,
    BadCardNumber,
    CardTaken,
    OtherProgramme,
    AccountBlocked,
    NextTier,
    TopTier,
    SpendNeeded,
    Within,
    Days,
    VisitsNeeded,
    Or,
    And,
    WhereSetHelp,
    Setting,
    Value,
    WhereSet,
    AccrualPercent,
    CapPercent,
    Precision,
    Rounding,
    OnDiscounted,
    OnPointsPart,
    Expiry,
    Months,
    TimeZone,
    WelcomeBonus,
    WelcomeExpiry,
    Shortfall,
    ExcludedSkus,
    CardRanges,
    VirtualCards,
    RedeemByCode,
    Categories,
    Category,
    Excluded,
    Tiers,
    Groups,
    Description,
    Members,
    ForceDelete,
    DeleteGroup,
    CreateGroup,
    GroupOverridesHelp,
    BadGroupName,
    GroupExists,
    GroupInUse,
    Programme,
    CashierOperator,
    // The login form's CSRF token (bo-central).
    LoginExpired,
    // Reports (bo-reports).
    Reports,
    FirstDay,
    DayAfter,
    Granularity,
    Day,
    Week,
    Month,
    ByStore,
    ByTerminal,
    Run,
    Period,
    Store,
    Terminal,
    Accrued,
    Redeemed,
    Expired,
    Adjusted,
    Returns,
    NewCustomers,
    Count,
    Liability,
    BurningSoon,
    TopCustomers,
    AsOf,
    Csv,
    BadDay,
    BadPeriod,
    TooManyRows,
    Movements,
    NoRows,
    BadGranularity,
    // Customers: create, edit, bulk groups, CSV import (bo-customers).
    NewCustomer,
    Edit,
    EditCustomer,
    CodeWord,
    CodeWordSet,
    CodeWordUnset,
    CodeWordKeep,
    ClearCodeWord,
    CardToAttach,
    Save,
    Create,
    BadName,
    BadPhone,
    BadEmail,
    NoContact,
    PhoneTaken,
    EmailTaken,
    BadCodeWord,
    BadCard,
    UnknownGroup,
    AddToGroup,
    RemoveFromGroup,
    NothingSelected,
    GroupsChanged,
    Import,
    CsvFile,
    DryRun,
    ApplyImport,
    Row,
    WouldCreate,
    AlreadyImported,
    RefusedRows,
    ImportStarted,
    ImportRunning,
    ImportDone,
    Created,
    Skipped,
    BadFile,
    BadHeader,
    BadRowShape,
    DupPhoneInFile,
    DupEmailInFile,
    DupCardInFile,
    CardRequired,
    BadBalance,
    ExplainImport,
    Refused,
    Rows,
    // Manual points tied to a past receipt.
    ForReceipt,
    NoSuchReceipt,
}

/// `t` in `lang`.
pub fn tr(lang: Lang, t: T) -> &'static str {
    let (ru, en) = match t {
        T::Title => ("Бэк-офис программы лояльности", "Loyalty back office"),
        T::Login => ("Войти", "Log in"),
        T::Name => ("Имя", "Name"),
        T::Password => ("Пароль", "Password"),
        T::LogOut => ("Выйти", "Log out"),
        T::BadLogin => ("Неверное имя или пароль", "Wrong name or password"),
        T::TooMany => (
            "Слишком много неудачных попыток; попробуйте позже",
            "Too many failed attempts; try again later",
        ),
        T::Customers => ("Клиенты", "Customers"),
        T::Search => ("Найти", "Search"),
        T::SearchHint => (
            "Телефон, e-mail, имя или номер карты (можно последние 4 цифры)",
            "Phone, e-mail, name or card number (the last 4 digits will do)",
        ),
        T::NoResults => ("Ничего не найдено", "Nothing found"),
        T::Next => ("Дальше", "Next"),
        T::Account => ("Счёт", "Account"),
        T::Status => ("Статус", "Status"),
        T::Phone => ("Телефон", "Phone"),
        T::Email => ("E-mail", "E-mail"),
        T::Cards => ("Карты", "Cards"),
        T::Balance => ("Баланс", "Balance"),
        T::Tier => ("Уровень", "Tier"),
        T::Lots => ("Начисления и сгорание", "Lots and burn dates"),
        T::Remaining => ("Осталось", "Remaining"),
        T::Burns => ("Сгорает", "Burns"),
        T::Never => ("никогда", "never"),
        T::History => ("История", "History"),
        T::Kind => ("Операция", "Kind"),
        T::When => ("Когда", "When"),
        T::Where => ("Магазин / касса", "Store / till"),
        T::Reason => ("Причина", "Reason"),
        T::Operator => ("Оператор", "Operator"),
        T::Amount => ("Сумма", "Amount"),
        T::Block => ("Заблокировать", "Block"),
        T::Unblock => ("Разблокировать", "Unblock"),
        T::ManualPoints => ("Ручное начисление и списание", "Manual points"),
        T::Accrue => ("Начислить", "Accrue"),
        T::Deduct => ("Списать", "Deduct"),
        T::Note => ("Комментарий", "Note"),
        T::Expires => ("Сгорает (необязательно)", "Expires (optional)"),
        T::Submit => ("Провести", "Submit"),
        T::Done => ("Готово", "Done"),
        T::Audit => ("Журнал действий", "Audit log"),
        T::ExportCsv => ("Выгрузить CSV", "Export CSV"),
        T::Action => ("Действие", "Action"),
        T::Target => ("Объект", "Target"),
        T::Detail => ("Подробности", "Detail"),
        T::From => ("Адрес", "From"),
        T::Forbidden => ("Недостаточно прав", "Not allowed for your role"),
        T::OverLimit => (
            "Больше вашего лимита на одну операцию",
            "More than your limit per operation",
        ),
        T::NotFound => ("Не найдено", "Not found"),
        T::ReasonGoodwill => ("Жест доброй воли", "Goodwill"),
        T::ReasonComplaint => ("Жалоба", "Complaint"),
        T::ReasonCorrection => ("Исправление ошибки", "Correction"),
        T::ReasonPromotion => ("Акция", "Promotion"),
        T::ReasonOther => ("Другое", "Other"),
        T::BadDate => (
            "Дата в виде ГГГГ-ММ-ДД, в будущем",
            "A future date as YYYY-MM-DD",
        ),
        T::Failed => ("Операция не выполнена", "The operation failed"),
        // Card actions, tier progress, the programme page (bo-cards).
        T::ConfirmFound => (
            "Карта нашлась: вернуть её в работу",
            "The card turned up: put it back in use",
        ),
        T::Reactivate => ("Вернуть в работу", "Reactivate"),
        T::ReportLost => ("Утеряна", "Report lost"),
        T::RegenerateSecret => ("Новый секретный код", "New secret"),
        T::Replace => ("Заменить карту", "Replace card"),
        T::SecretAgain => (
            "Код уже выдан и показан один раз; он не показывается снова. Нужен новый — нажмите «Новый секретный код» ещё раз на карточке клиента",
            "The secret was already made and shown once; it is not shown again. For another, press New secret on the customer card again",
        ),
        T::SecretOnce => (
            "Секретный код показан один раз: сообщите его клиенту сейчас, больше его нигде не увидеть",
            "The secret is shown this once: give it to the customer now, it cannot be seen again",
        ),
        T::ReplaceHelp => (
            "Новая карта получает баланс счёта (баллы живут на счёте), старая становится утерянной. Введите номер новой физической карты или оставьте поле пустым, чтобы выпустить виртуальную",
            "The new card shares the account's balance (points live on the account); the old one becomes lost. Type the new physical card's number, or leave it empty for a virtual card",
        ),
        T::NewCardNumber => (
            "Номер новой карты (необязательно)",
            "New card number (optional)",
        ),
        T::BadCardNumber => (
            "Номер карты: от 4 до 32 цифр",
            "Card number: 4 to 32 digits",
        ),
        // Customers: create, edit, bulk groups, CSV import (bo-customers).
        T::NewCustomer => ("Новый клиент", "New customer"),
        T::Edit => ("Изменить", "Edit"),
        T::EditCustomer => ("Изменить данные клиента", "Edit the customer"),
        T::CodeWord => ("Кодовое слово", "Code word"),
        T::CodeWordSet => ("задано", "set"),
        T::CodeWordUnset => ("не задано", "not set"),
        T::CodeWordKeep => ("пусто — не менять", "empty: unchanged"),
        T::ClearCodeWord => ("Удалить кодовое слово", "Clear the code word"),
        T::CardToAttach => (
            "Номер физической карты (пусто — виртуальная карта)",
            "Physical card number (empty: a virtual card)",
        ),
        T::Save => ("Сохранить", "Save"),
        T::Create => ("Создать", "Create"),
        T::BadName => (
            "Имя: до 100 символов, без управляющих",
            "Name: up to 100 characters, no control characters",
        ),
        T::BadPhone => (
            "Не телефон: например +7 916 123-45-67 или 8 916 123-45-67",
            "Not a phone number: such as +7 916 123-45-67 or 8 916 123-45-67",
        ),
        T::BadEmail => ("Не адрес e-mail", "Not an e-mail address"),
        T::NoContact => ("Укажите телефон или e-mail", "Give a phone or an e-mail"),
        T::PhoneTaken => (
            "Клиент с этим телефоном уже есть",
            "A customer with this phone exists",
        ),
        T::EmailTaken => (
            "Клиент с этим e-mail уже есть",
            "A customer with this e-mail exists",
        ),
        T::BadCodeWord => (
            "Кодовое слово: от 2 до 64 символов",
            "Code word: 2 to 64 characters",
        ),
        T::BadCard => (
            "Номер карты: от 4 до 32 цифр",
            "Card number: 4 to 32 digits",
        ),
        T::CardTaken => (
            "Эта карта уже выдана другому клиенту",
            "This card is already on another account",
        ),
        T::OtherProgramme => (
            "Карта другой программы",
            "The card belongs to another programme",
        ),
        T::AccountBlocked => (
            "Счёт заблокирован: новую карту выдать нельзя",
            "The account is blocked: no new card can be issued",
        ),
        T::NextTier => ("До следующего уровня", "To the next tier"),
        T::TopTier => (
            "Высший доступный уровень",
            "The highest level open to this customer",
        ),
        T::SpendNeeded => ("покупки на", "spend"),
        T::Within => ("за", "within"),
        T::Days => ("дн.", "days"),
        T::VisitsNeeded => ("дней с покупками", "visit days"),
        T::Or => ("или", "or"),
        T::And => ("и", "and"),
        T::WhereSetHelp => (
            "Правила программы, как их применяет учёт. Они задаются в файле настроек: posbridge.toml на кассе со встроенным учётом или central.toml центрального сервиса (ledger.backend = \"central\"); после изменения перезапустите службу. Группы хранятся в учёте и меняются здесь",
            "The programme's rules as the ledger applies them. They are set in the configuration file: posbridge.toml on a till with the embedded ledger, or the central service's central.toml (ledger.backend = \"central\"); restart the service after a change. Groups live in the ledger and are changed here",
        ),
        T::Setting => ("Настройка", "Setting"),
        T::Value => ("Значение", "Value"),
        T::WhereSet => ("Где меняется", "Where it is set"),
        T::AccrualPercent => ("Начисление", "Accrual"),
        T::CapPercent => ("Оплата баллами, не более", "Payable with points, at most"),
        T::Precision => ("Знаков после запятой", "Decimal places"),
        T::Rounding => ("Округление начисления", "Accrual rounding"),
        T::OnDiscounted => (
            "Начислять на товары со скидкой",
            "Accrue on discounted lines",
        ),
        T::OnPointsPart => (
            "Начислять на часть, оплаченную баллами",
            "Accrue on the part paid with points",
        ),
        T::Expiry => ("Срок жизни баллов", "Points expire after"),
        T::Months => ("мес.", "months"),
        T::TimeZone => (
            "Часовой пояс программы (все даты на страницах)",
            "Programme time zone (every date on these pages)",
        ),
        T::WelcomeBonus => ("Приветственные баллы", "Welcome bonus"),
        T::WelcomeExpiry => ("Срок приветственных баллов", "Welcome bonus expires after"),
        T::Shortfall => ("Возврат при нехватке баллов", "Refund shortfall"),
        T::ExcludedSkus => ("Исключённые артикулы", "Excluded SKUs"),
        T::CardRanges => ("Диапазоны физических карт", "Physical card ranges"),
        T::VirtualCards => ("Виртуальные карты", "Virtual cards"),
        T::RedeemByCode => ("Списание по коду из SMS", "Redeem with a one-time code"),
        T::Categories => ("Категории", "Categories"),
        T::Category => ("Категория", "Category"),
        T::Excluded => ("Не участвует", "Excluded"),
        T::Tiers => ("Уровни", "Tiers"),
        T::Groups => ("Группы", "Groups"),
        T::Description => ("Описание", "Description"),
        T::Members => ("Участников", "Members"),
        T::ForceDelete => ("вместе с участниками", "with its members"),
        T::DeleteGroup => ("Удалить", "Delete"),
        T::CreateGroup => ("Создать группу", "Create a group"),
        T::GroupOverridesHelp => (
            "Свои проценты начисления и оплаты у группы задаются уровнями, доступными только ей ([[ledger.programme.tiers]] groups)",
            "A group's own accrual and cap come from tiers open only to it ([[ledger.programme.tiers]] groups)",
        ),
        T::BadGroupName => (
            "Название: от 1 до 64 печатных символов",
            "Name: 1 to 64 printable characters",
        ),
        T::GroupExists => ("Такая группа уже есть", "The group exists"),
        T::GroupInUse => (
            "В группе есть участники; отметьте «вместе с участниками»",
            "The group has members; tick \"with its members\"",
        ),
        T::Programme => ("Программа", "Programme"),
        T::CashierOperator => ("Кассир / оператор", "Cashier / operator"),
        // The login form's CSRF token (bo-central).
        T::LoginExpired => (
            "Форма входа устарела; войдите ещё раз",
            "The login form expired; please log in again",
        ),
        // Reports (bo-reports).
        T::Reports => ("Отчёты", "Reports"),
        T::FirstDay => ("С (включительно)", "From (inclusive)"),
        T::DayAfter => ("По (не включая)", "To (exclusive)"),
        T::Granularity => ("Группировать по", "Group by"),
        T::Day => ("дням", "day"),
        T::Week => ("неделям", "week"),
        T::Month => ("месяцам", "month"),
        T::ByStore => ("по магазинам", "by store"),
        T::ByTerminal => ("по кассам", "by till"),
        T::Run => ("Построить", "Run"),
        T::Period => ("Период", "Period"),
        T::Store => ("Магазин", "Store"),
        T::Terminal => ("Касса", "Till"),
        T::Accrued => ("Начислено", "Accrued"),
        T::Redeemed => ("Списано в оплату", "Redeemed"),
        T::Expired => ("Сгорело", "Expired"),
        T::Adjusted => ("Ручные операции", "Adjusted"),
        T::Returns => ("Возвраты", "Returns"),
        T::NewCustomers => ("Новые клиенты", "New customers"),
        T::Count => ("Количество", "Count"),
        T::Liability => (
            "Баллы на счетах клиентов (обязательства)",
            "Points held by customers (liability)",
        ),
        T::BurningSoon => ("Сгорят в ближайшие 30 дней", "Burning in the next 30 days"),
        T::TopCustomers => (
            "Лучшие клиенты периода (по начисленным баллам)",
            "Top customers of the period (by points accrued)",
        ),
        T::AsOf => ("На момент", "As of"),
        T::Csv => ("CSV", "CSV"),
        T::BadDay => ("Дата в виде ГГГГ-ММ-ДД", "A date as YYYY-MM-DD"),
        T::BadPeriod => (
            "Позже первого дня, не более чем на 366 дней",
            "After the first day, at most 366 days later",
        ),
        T::TooManyRows => (
            "Слишком много строк: сократите период или группировку",
            "Too many rows: shorten the period or group less",
        ),
        T::Movements => ("Движение баллов", "Points movements"),
        T::NoRows => ("Нет данных", "No data"),
        T::BadGranularity => ("Дни, недели или месяцы", "Day, week or month"),
        T::UnknownGroup => ("Нет такой группы", "No such group"),
        T::AddToGroup => ("Добавить в группу", "Add to group"),
        T::RemoveFromGroup => ("Убрать из группы", "Remove from group"),
        T::NothingSelected => (
            "Не выбрано ни одного клиента (не больше 100 за раз)",
            "No customers selected (at most 100 at a time)",
        ),
        T::GroupsChanged => (
            "Группы изменены у клиентов:",
            "Groups changed for customers:",
        ),
        T::Import => ("Импорт клиентов", "Import customers"),
        T::CsvFile => ("Файл CSV", "CSV file"),
        T::DryRun => (
            "Проверить (ничего не меняет)",
            "Check (a dry run: changes nothing)",
        ),
        T::ApplyImport => ("Импортировать", "Import"),
        T::Row => ("Строка", "Row"),
        T::WouldCreate => ("Будет создано клиентов", "Customers it would create"),
        T::AlreadyImported => (
            "Уже импортировано (пропускаются)",
            "Already imported (skipped)",
        ),
        T::RefusedRows => ("Строки, которые будут отклонены", "Rows it would refuse"),
        T::ImportStarted => (
            "Импорт идёт; обновите страницу, чтобы увидеть итог",
            "The import is running; reload the page for its result",
        ),
        T::ImportRunning => ("Идёт импорт", "An import is running"),
        T::ImportDone => ("Импорт завершён", "The import finished"),
        T::Created => ("Создано", "Created"),
        T::Skipped => ("Пропущено", "Skipped"),
        T::BadFile => (
            "Файл: CSV в UTF-8, до 5 МиБ и 50 000 строк, с заголовком из описания",
            "File: UTF-8 CSV, at most 5 MiB and 50 000 rows, with the documented header",
        ),
        T::BadHeader => (
            "Заголовок: name, phone, email, card, groups, balance (groups и balance необязательны)",
            "Header: name, phone, email, card, groups, balance (groups and balance optional)",
        ),
        T::BadRowShape => (
            "Неверное число полей или строка длиннее 1000 символов",
            "Wrong number of fields or a field longer than 1000 characters",
        ),
        T::DupPhoneInFile => (
            "Телефон повторяется в файле, строка",
            "The phone repeats in the file, row",
        ),
        T::DupEmailInFile => (
            "E-mail повторяется в файле, строка",
            "The e-mail repeats in the file, row",
        ),
        T::DupCardInFile => (
            "Карта повторяется в файле, строка",
            "The card repeats in the file, row",
        ),
        T::CardRequired => ("Номер карты обязателен", "The card number is required"),
        T::BadBalance => (
            "Баланс: десятичное число ≥ 0, например 120.50",
            "Balance: a decimal ≥ 0, such as 120.50",
        ),
        T::Refused => ("Отклонено", "Refused"),
        T::Rows => ("Строк в файле", "Rows in the file"),
        T::ExplainImport => (
            "Только администратор. Повторный импорт того же файла ничего не меняет.",
            "Admins only. Importing the same file again changes nothing.",
        ),
        T::ForReceipt => ("За чек (необязательно)", "For receipt (optional)"),
        T::NoSuchReceipt => (
            "У этого клиента нет продажи с таким чеком",
            "This customer has no sale with this receipt",
        ),
    };
    match lang {
        Lang::Ru => ru,
        Lang::En => en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_first_known() {
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9,ru;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("de-DE, ru;q=0.5"), Lang::Ru);
        assert_eq!(Lang::from_accept("fr"), Lang::Ru);
        assert_eq!(Lang::from_accept(""), Lang::Ru);
        assert_eq!(tr(Lang::En, T::Login), "Log in");
    }
}
